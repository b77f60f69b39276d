"""One-line refusals of a space file: the file, the key path, what was expected."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path

from collatz_ray.errors import SHOWN_CHARS, UsageError


def refusal(path: Path, where: str, what: str) -> UsageError:
    # `where` is a key path such as parameters.<name>, and a name is whatever the file held.
    if len(where) > 2 * SHOWN_CHARS:
        where = where[: 2 * SHOWN_CHARS - 3] + "..."
    return UsageError(f"{path}: {where}: {what}")


def did_you_mean(word: object, options: typing.Iterable[str]) -> str:
    options = list(options)
    close = difflib.get_close_matches(str(word), options, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; expected one of: {', '.join(options)}"
