"""One line that says why a trial failed, out of the pages Ray writes about it.

`failure_reason` reads the message of a Ray Train failure as it reaches the Tune trial;
`error_line` reads a trial's error.txt as it lies on disk. Both prefer the trainer's own
exception (a divergence, a bad setting) over the wrappers around it.
"""

from __future__ import annotations

import itertools
import re

MAX_REASON_CHARS = 500
MAX_ERROR_CHARS = 200
#: The trainer's exceptions, whose line says more than anything Ray wraps around them.
TRAINER_ERRORS = ("TrainingDiverged", "UsageError")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: `module.Name: message` or Ray's `module.RayTaskError(Name): message`, unindented.
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(\([\w.]*\))?: ")


def failure_reason(message: str, *, fallback: str = "unknown failure") -> str:
    """The most specific line of a Train failure: the trainer's own exception if any,
    else the last `...Error:` / `...Exception:` line, else the first line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for name in TRAINER_ERRORS:
        for line in reversed(lines):
            if name + ":" in line:
                return line[line.index(name) :][:MAX_REASON_CHARS]
    errors = [line for line in lines if "Error:" in line or "Exception:" in line]
    return (errors[-1] if errors else lines[0] if lines else fallback)[:MAX_REASON_CHARS]


def error_line(text: str) -> str:
    """One line of a Ray error.txt that says what went wrong.

    Ray appends, per failure, "Failure # N (occurred at ...)" and the remote traceback
    (with terminal colours), which ends in the exception: an unindented `Name: message`
    line, its message possibly running on over further unindented lines. That exception
    of the last failure, else the failure's first line.
    """
    lines = [_ANSI.sub("", ln).rstrip() for ln in text.splitlines() if ln.strip()]
    starts = [i for i, ln in enumerate(lines) if ln.startswith("Failure # ")]
    body = lines[starts[-1] + 1 :] if starts else lines
    if not body:
        return "(error.txt holds no message)"
    found = [i for i, ln in enumerate(body) if _EXCEPTION.match(ln)]
    if not found:
        return body[0].strip()[:MAX_ERROR_CHARS]
    message = [body[found[-1]]]
    message += itertools.takewhile(lambda ln: not ln[0].isspace(), body[found[-1] + 1 :])
    return " ".join(message)[:MAX_ERROR_CHARS]


class SearchHalted(RuntimeError):
    """The search ran and had to stop for a reason its message says in one line (its
    storage gave out, its trials cannot be placed). What it had done is kept, and
    `--resume` goes on once the reason is gone."""
