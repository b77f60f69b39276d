"""A directory that one process works in at a time: a run directory (the trainer), an
experiment (the search).

`hold_lock(path, what=...)` holds an exclusive `fcntl.flock` on `path` for the duration
of a `with` block. The kernel drops the lock when its holder exits, however it exits
(a crash, SIGKILL, a reboot), so a stale lock never needs clearing by hand. The file
records who holds it (pid, host, start time) so that the process refused can say whom
it waits for; the holder removes the file when it lets go.

Removing a lock file while others may open it is safe only with a check: a process may
open the file just before the holder removes it and then lock the removed file. So a
process that got the lock also checks that the path still names the file it locked,
and starts over if not.

The lock is reentrant within a process (a command that holds a run's lock may call
`train`, which takes it again). flock works across the machines of an NFS mount on
Linux (as a POSIX lock), not on every network filesystem.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from collatz_ray.errors import UsageError

_held: dict[Path, int] = {}  # path -> depth, for the locks this process holds
_held_guard = threading.Lock()


@contextlib.contextmanager
def hold_lock(path: Path, *, what: str) -> Iterator[None]:
    """Hold the lock file `path` until the block ends; if another process holds it, raise
    UsageError naming `what` and the holder ("run directory X is in use by pid ...")."""
    path = Path(path).absolute()
    with _held_guard:
        if path in _held:
            _held[path] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[path] -= 1
        return
    fd = _acquire(path, what)
    with _held_guard:
        _held[path] = 1
    try:
        yield
    finally:
        with _held_guard:
            del _held[path]
        with contextlib.suppress(OSError):  # a storage gone read-only keeps the file: harmless
            path.unlink(missing_ok=True)  # while still locked: see the module docstring
        os.close(fd)  # releases the lock


def _acquire(path: Path, what: str) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise UsageError(f"{what}: cannot create the lock file {path} ({err.strerror or err})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UsageError(
                f"{what} is in use by {holder}; wait for it to finish, or stop it "
                f"(its lock {path.name} goes with it)"
            ) from None
        except OSError as err:  # a filesystem without locks
            os.close(fd)
            raise UsageError(f"{what}: cannot lock {path} ({err.strerror or err})") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed it as we opened it: take the new one
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    return fd


def _holder(fd: int) -> str:
    """Who holds the lock, from what it wrote into the file."""
    try:
        record = json.loads(os.pread(fd, 4096, 0))
        return f"pid {int(record['pid'])} on host {record['host']} (started {record['started']})"
    except (ValueError, KeyError, TypeError, OSError):  # it has not written it yet
        return "another process"
