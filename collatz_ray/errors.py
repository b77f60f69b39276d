"""The one exception type for bad input, and how command-line tools report it.

Every validation failure anywhere in the package raises `UsageError` with a single line
that names the file, key or flag and what was expected. Command-line entry points wrap
their body in `exit_on_usage_error`, which prints that line and exits with status 2 and
never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable[..., object])

USAGE_EXIT_STATUS = 2


class UsageError(ValueError):
    """Bad input from a user: a flag, a config key, a file. The message is one line."""


def exit_on_usage_error(main: F) -> F:
    """Decorate a CLI main(): UsageError -> 'error: <line>' on stderr, exit status 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UsageError as err:
            module = sys.modules.get(main.__module__)
            spec = getattr(module, "__spec__", None)  # names the module under `python -m`
            prog = spec.name if spec is not None else main.__module__
            print(f"{prog}: error: {err}", file=sys.stderr)
            raise SystemExit(USAGE_EXIT_STATUS) from None

    return wrapper  # type: ignore[return-value]


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors (unknown flag, bad value) become a UsageError: one line and
    exit status 2 through exit_on_usage_error, like every other bad input."""

    def error(self, message: str) -> None:
        raise UsageError(message)
