"""The one exception type for bad input.

Every validation failure anywhere in the package raises `UsageError` with a single line
that names the file, key or flag and what was expected. The command-line tools turn it
into that line on stderr and exit status 2 (see `collatz_ray._cli`), never a traceback.

A line quotes what the user gave through `shown`, which cuts it short: a file can hold a
megabyte string or a list nested a thousand deep, and neither may turn one error line
into a screenful (or take seconds to format).

Text from a file that is shown as it is (a trial id, an error reason, a config string,
a bank field) goes through `printable`: a control character in it would otherwise reach
the terminal and clear the screen, change colours or break a table row.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

#: Characters of a value an error line quotes at most.
SHOWN_CHARS = 60


class _Repr(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        # An integer of more digits than are shown is not written out: str() of one past
        # 4300 digits raises, and the digits would be cut anyway.
        if x.bit_length() > 4 * SHOWN_CHARS:
            return f"<{'-' if x < 0 else ''}integer of {x.bit_length()} bits>"
        return super().repr_int(x, level)


_repr = _Repr()
_repr.maxstring = _repr.maxother = _repr.maxlong = SHOWN_CHARS
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 8
_repr.maxlevel = 3


class UsageError(ValueError):
    """Bad input from a user: a flag, a config key, a file. The message is one line."""


def shown(value: Any) -> str:
    """repr(value) as an error line quotes it: at most SHOWN_CHARS characters, computed
    without formatting all of a huge value."""
    text = _repr.repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


#: What a terminal acts on rather than shows: C0 and C1 controls, DEL, the Unicode line
#: and paragraph separators, and the bidirectional overrides that reorder what follows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every control character written as an escape (ESC as \\x1b), so
    that showing it on a terminal shows it; `keep_newlines`: line breaks stay (a block
    of several lines)."""

    def escape(match: re.Match[str]) -> str:
        char = match.group(0)
        if keep_newlines and char == "\n":
            return char
        return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"

    return _CONTROL.sub(escape, text)
