"""Ctrl-C and SIGTERM in a command: an exception the command can answer, then one line
and the exit status a shell gives a process that signal ended, never a traceback.

Within `raising_on_signals` both signals raise `Interrupted`, a KeyboardInterrupt, so
what is written to clean up after Ctrl-C (a lock let go, a temporary file removed) runs
for SIGTERM as well, which would otherwise end the process on the spot. Only the first
signal raises: a second one, while the command is cleaning up after the first, would
cut that short. A command that kept something (a scan's progress, a run's checkpoints)
catches the exception and raises `Interrupted(signum, kept=...)` with what was kept
and the command that goes on; `collatz_ray._cli.exit_on_interrupt` prints it.

tune and replicate stop Ray's loop cleanly instead (search/ray/interrupt.py), with the
same exit statuses.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: Exit statuses of a process ended by a signal, as shells report them.
EXIT_STATUS: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `kept` says what the command kept and how it goes on."""

    def __init__(self, signum: int = signal.SIGINT, *, kept: str | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum, self.kept = signal.Signals(signum), kept

    @classmethod
    def of(cls, stop: KeyboardInterrupt, *, kept: str) -> Interrupted:
        """The interruption `stop` (Python's own KeyboardInterrupt is SIGINT) with `kept`."""
        return cls(getattr(stop, "signum", signal.SIGINT), kept=kept)

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.signum]


@contextlib.contextmanager
def raising_on_signals() -> Iterator[None]:
    """Within: the first SIGINT or SIGTERM raises Interrupted, later ones are ignored.
    Outside the main thread (where Python delivers no signals) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Interrupted(signum)

    saved = {sig: signal.signal(sig, on_signal) for sig in EXIT_STATUS}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Within: SIGINT and SIGTERM wait for the block to end, then reach the handler that
    was in place. For a record kept in memory and in a file (a scan's progress), so the
    line an interruption prints tells what the file holds. Outside the main thread it
    does nothing (Python delivers signals to the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    saved = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in EXIT_STATUS}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if pending:
            signal.raise_signal(pending[0])
