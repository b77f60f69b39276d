"""One line of progress on stderr, redrawn in place, and only when stderr is a terminal
(a log file or a pipe gets nothing)."""

from __future__ import annotations

import sys
import time

WIDTH = 30


class ProgressBar:
    """`show(done, text)` draws `[####......] text` at most every `every_s` seconds (and
    always at the end); `clear()` erases it before other output."""

    def __init__(self, total: int, *, enabled: bool = True, every_s: float = 0.2) -> None:
        self.total, self.every_s = total, every_s
        self.enabled = enabled and sys.stderr.isatty()
        self._last, self._shown = 0.0, 0

    def show(self, done: int, text: str) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < self.every_s and done < self.total):
            return
        self._last = now
        filled = int(WIDTH * done / self.total) if self.total else WIDTH
        line = f"\r[{'#' * filled}{'.' * (WIDTH - filled)}] {text} "
        self._shown = max(self._shown, len(line))
        sys.stderr.write(line)
        sys.stderr.flush()

    def clear(self) -> None:
        if self.enabled and self._shown:
            sys.stderr.write("\r" + " " * self._shown + "\r")
            sys.stderr.flush()
            self._shown = 0
