"""Ctrl-C and SIGTERM stop a search the way Tune stops it cleanly, and are told apart
from a search that finished.

Tune ends its loop gracefully (trial state saved, files synced) on SIGUSR1, and on
SIGINT when it owns that signal; it then returns from fit() as if the search had ended,
so the command would report a "best trial" and exit 0, and its log line suggests
Ray's own `Tuner.restore(...)`. SIGTERM it does not handle at all: the process died
mid-teardown. Here both signals are ours: the first one is recorded and passed on to
Tune as SIGUSR1 (the clean stop), a second one stops at once with KeyboardInterrupt. The
command then exits 130 or 143 and names its own --resume.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

from collatz_ray._interrupt import EXIT_STATUS


@dataclass
class Interruption:
    signum: int | None = None
    #: Set once the search is shutting down: a signal then is noted, not acted on.
    ending: bool = False

    @property
    def exit_status(self) -> int:
        return 1 if self.signum is None else EXIT_STATUS.get(self.signum, 1)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


class _DropRayResumeHint(logging.Filter):
    """Tune's "Resume experiment with: Tuner.restore(...)": the command says its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore(" not in record.getMessage()


@contextlib.contextmanager
def stop_cleanly_on_signals() -> Iterator[Interruption]:
    """Within: SIGINT/SIGTERM stop the Tune loop cleanly (once) and are recorded. Enter
    after ray.init, which installs a SIGTERM handler of its own."""
    interruption = Interruption()
    saved_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # SIGINT stays ours during fit()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        first = interruption.signum is None
        interruption.signum = interruption.signum or signum
        if interruption.ending:
            return
        if not first or signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, signal.SIG_IGN, None):
            raise KeyboardInterrupt  # a second signal, or Tune's loop is not running
        os.kill(os.getpid(), signal.SIGUSR1)

    saved = {sig: signal.signal(sig, on_signal) for sig in EXIT_STATUS}
    hint_filter = _DropRayResumeHint()
    tune_logger = logging.getLogger("ray.tune.tune")
    tune_logger.addFilter(hint_filter)
    try:
        yield interruption
    finally:
        tune_logger.removeFilter(hint_filter)
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if saved_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = saved_env
