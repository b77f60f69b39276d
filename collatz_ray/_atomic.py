"""Replacing a file in one step: whoever reads it, or a crash at any moment, finds the
old file or the new one, never half of either.

The file is written under a temporary name beside its target (the same filesystem, so
the rename is atomic) and renamed over it only once complete. What differs between
callers is durability, which each names:

- `durable=True`: the data is on disk when the call returns (the file is fsynced before
  the rename, its directory after it), so a power cut keeps it too. For files that are
  costly or impossible to redo: checkpoints, a search's settings and saved state, a
  scan's report and its progress, the evaluation CSV.
- `durable=False`: atomic for readers and for a crash of this process, but a power cut
  may lose the change (or, on some filesystems, leave an empty file). For files that are
  made again at no cost: an experiment's summary.md.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_file(path: str | Path, *, durable: bool, text: bool = False) -> Iterator[IO]:
    """An open temporary file that replaces `path` when the block ends without an error
    (and is removed, leaving `path` as it was, when it raises, Ctrl-C included).
    `text`: UTF-8 text written as is (no newline translation: a CSV's CRLF stays)."""
    path = Path(path)
    # pid and a random part: concurrent writers of one target never share a temporary
    # file. "x" rather than mkstemp, so the file gets the usual umask permissions
    # instead of 0600. The ".*.tmp" shape is what clear_run sweeps after a crash.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    handle = open(tmp, "x", encoding="utf-8", newline="") if text else open(tmp, "xb")
    try:
        with handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        sync_directory(path.parent)


def write_atomically(path: str | Path, data: bytes | str, *, durable: bool) -> None:
    """Replace `path` by `data` (str is written as UTF-8) in one step; see the module."""
    with atomic_file(path, durable=durable, text=isinstance(data, str)) as handle:
        handle.write(data)


def write_synced(path: Path, data: bytes) -> None:
    """Write a new file and have it on disk when this returns (a part of something
    renamed into place later, such as a checkpoint directory)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def sync_directory(path: str | Path) -> None:
    """Put a directory's entries (a rename, a new file) on disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
