"""What every `python -m collatz_ray.<command>` shares: its argument parser, the rule
that bad input is one line and exit status 2, and the flag value parsers.

The library never imports this module; only the command modules do.
"""

from __future__ import annotations

import argparse
import functools
import math
import re
import sys
from typing import Any, Callable, TypeVar

from collatz_ray.errors import UsageError

F = TypeVar("F", bound=Callable[..., object])

USAGE_EXIT_STATUS = 2


def exit_on_usage_error(main: F) -> F:
    """Decorate a command's main(): UsageError -> '<prog>: error: <line>' on stderr and
    exit status 2, never a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UsageError as err:
            print(f"{_prog(main)}: error: {err}", file=sys.stderr)
            raise SystemExit(USAGE_EXIT_STATUS) from None

    return wrapper  # type: ignore[return-value]


def _prog(main: Callable[..., object]) -> str:
    """The command's module name as the user typed it after `python -m`."""
    module = sys.modules.get(main.__module__)
    spec = getattr(module, "__spec__", None)
    name = spec.name if spec is not None else main.__module__
    return name.removesuffix(".__main__")


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors (unknown flag, bad value) become a UsageError: one line and
    exit status 2 through exit_on_usage_error, like every other bad input."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:
        raise UsageError(message)


def number(kind: Callable[[str], Any], check: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    """A flag's type: `kind(text)` that must pass `check`, else '... expected <what>'."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


positive_int = number(int, lambda v: v >= 1, "an integer >= 1")
nonnegative_float = number(float, lambda v: v >= 0, "a number >= 0")


#: The largest power `integer_expression` builds, in bits (exact arithmetic goes to 2^32000).
MAX_POWER_BITS = 30000
_TERM = re.compile(r"\s*([+-]?)\s*(\d+)(?:\s*\*\*\s*(\d+))?\s*")


def integer_expression(text: str) -> int:
    """An integer written as terms like 3, 2**32 or 2**40+2**20-1, parsed (never eval'd);
    ValueError when it is not one, or when a power has more than MAX_POWER_BITS bits."""
    total, pos = 0, 0
    while pos < len(text):
        match = _TERM.match(text, pos)
        if match is None or match.end() == pos or (pos > 0 and not match.group(1)):
            raise ValueError(text)
        sign, base, exponent = match.groups()
        if exponent is not None and int(base) > 1 and int(exponent) * math.log2(int(base)) > MAX_POWER_BITS:
            raise ValueError(text)
        term = int(base) ** int(exponent) if exponent is not None else int(base)
        total += -term if sign == "-" else term
        pos = match.end()
    if not text.strip():
        raise ValueError(text)
    return total
