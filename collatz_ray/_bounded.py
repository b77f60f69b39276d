"""Reading files from storage without trusting them.

An experiment's files (result.json, params.json, the counterexample bank, a checkpoint's
reports) are written by trials, by other machines, by a crash or by anyone with the
storage; the settings files (YAML configs and spaces) by users. What any of them holds
must cost a bounded amount of memory and time to read:

- only a regular file is read. It is opened without blocking (a FIFO would otherwise
  wait for a writer forever) and checked on the open descriptor, so neither a FIFO nor a
  device (/dev/zero, endless) nor a directory is ever read; where the caller names the
  directory the file belongs in (`root`), a path that resolves through links to a place
  outside it is refused too.
- a whole file is read only up to a limit its kind sets; past it the read stops with a
  line that says so (`read_bytes`), before the rest is read.
- a file of lines is read a line at a time (`lines`), each line at most `max_line`
  bytes (a longer one is passed over in blocks, never held), so memory goes with what
  the caller keeps of it, not with the file.
- JSON is nested at most MAX_JSON_DEPTH deep (`loads`): the depth is counted on the
  text before parsing, since the parser itself recurses and a line of 100000 brackets
  ends in a RecursionError.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

#: The deepest nesting of JSON lists and objects read. The package's own files nest five
#: or six deep (a report's config, Tune's trial state); far below where parsers recurse.
MAX_JSON_DEPTH = 64
#: params.json, train_config.json, collatz_search.json: settings, a few kilobytes.
MAX_JSON_BYTES = 2**20
#: Tune's experiment state holds every trial's config and last result: some 10 kB a trial.
MAX_STATE_BYTES = 64 * 2**20
#: A trial's scan (scan_trials): counts, density and the first --first counterexamples.
MAX_SCAN_BYTES = 16 * 2**20
#: What a line longer than it is passed over in, without holding it.
_BLOCK = 1 << 16


class Unreadable(ValueError):
    """A file that was not read, or not whole: str() is '<path>: <why>'."""

    def __init__(self, path: Path | str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path, self.why = Path(path), why


@contextlib.contextmanager
def open_regular(path: Path | str, *, root: Path | str | None = None) -> Iterator[IO[bytes]]:
    """`path` open for binary reading, if it is a regular file (inside `root` once links
    are resolved, when `root` is given). FileNotFoundError when there is nothing there;
    Unreadable for anything else that is not read."""
    if root is not None:
        real, inside = os.path.realpath(path), os.path.realpath(root)
        if os.path.commonpath([real, inside]) != inside:
            raise Unreadable(path, f"links to {real}, outside {root}; not read")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise Unreadable(path, f"cannot be read ({err.strerror or err})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Unreadable(path, "not a regular file (a directory, FIFO, device or socket); not read")
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def size_of(handle: IO[bytes]) -> int:
    """The size of an open file, as it is now."""
    return os.fstat(handle.fileno()).st_size


def read_bytes(path: Path | str, *, limit: int, root: Path | str | None = None) -> bytes:
    """The whole of a regular file of at most `limit` bytes (see open_regular); a larger
    one is Unreadable, and only limit + 1 bytes of it are ever read."""
    with open_regular(path, root=root) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise Unreadable(path, f"larger than {limit} bytes, the most such a file is read to; not read")
    return data


def read_json(path: Path | str, *, limit: int, root: Path | str | None = None) -> Any:
    """The JSON value in a file read by read_bytes (undecodable bytes replaced), nested
    at most MAX_JSON_DEPTH deep; ValueError when it is not JSON."""
    return loads(read_bytes(path, limit=limit, root=root).decode(errors="replace"))


#: A JSON string, escapes included; the brackets inside strings do not nest anything.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """How deep the lists and objects of a JSON text nest, counted without parsing it
    (and without recursion). For text that is not JSON, a number of no meaning."""
    brackets = _BRACKETS.findall(_STRING.sub("", text))
    steps = (1 if b in "[{" else -1 for b in brackets)
    return max(itertools.accumulate(steps), default=0)


def loads(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads of text nested at most `max_depth` deep; ValueError otherwise (and for
    anything json.loads refuses)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    if json_depth(text) > max_depth:
        raise ValueError(f"nested deeper than {max_depth} levels")
    return json.loads(text)


@dataclass(frozen=True)
class Line:
    """A line of a file: its number (from 1, or from the first line read), its text
    without the line break (None when it was longer than the reader's `max_line`), and
    whether it ended in a line break (a last line without one may be a write in
    progress)."""

    number: int
    text: str | None
    ended: bool


def lines(handle: IO[bytes], *, max_line: int, limit: int | None = None) -> Iterator[Line]:
    """The lines of an open file from where it stands, each decoded (undecodable bytes
    replaced), reading at most `limit` bytes in all (None: to the end); a line longer
    than `max_line` bytes comes as text None and is skipped in blocks, never held."""
    left = limit
    for number in itertools.count(1):
        if left is not None and left <= 0:
            return
        want = max_line + 1 if left is None else min(max_line + 1, left)
        raw = handle.readline(want)
        if not raw:
            return
        if left is not None:
            left -= len(raw)
        ended = raw.endswith(b"\n")
        if ended or len(raw) <= max_line:
            yield Line(number, raw.rstrip(b"\n").decode(errors="replace"), ended)
            continue
        while not ended and (left is None or left > 0):  # too long: pass over the rest
            more = handle.readline(_BLOCK if left is None else min(_BLOCK, left))
            if not more:
                break
            if left is not None:
                left -= len(more)
            ended = more.endswith(b"\n")
        yield Line(number, None, ended)


def skip_to_tail(handle: IO[bytes], *, keep: int) -> int:
    """Move an open file to the start of the first whole line of its last `keep` bytes;
    the bytes passed over (0 when the file is no larger)."""
    size = size_of(handle)
    if size <= keep:
        return 0
    handle.seek(size - keep - 1)
    if handle.read(1) != b"\n":  # the middle of a line: on to its end
        for block in iter(lambda: handle.readline(_BLOCK), b""):
            if block.endswith(b"\n"):
                break
    return handle.tell()
