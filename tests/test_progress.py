"""The one-line progress bar that training and verify draw on a terminal."""

from __future__ import annotations

import io

from collatz_ray._progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_is_drawn_on_a_terminal_only(monkeypatch):
    for stream, drawn in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr("sys.stderr", stream)
        bar = ProgressBar(4)
        bar.show(4, "chunk 4/4 2,000 n/s")
        assert ("[" + "#" * 30 + "] chunk 4/4 2,000 n/s" in stream.getvalue()) == drawn


def test_clear_erases_what_was_drawn_and_a_disabled_bar_stays_silent(monkeypatch):
    stream = Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    bar = ProgressBar(10)
    bar.show(5, "half")
    line = stream.getvalue()
    bar.clear()
    assert stream.getvalue() == line + "\r" + " " * len(line) + "\r"
    quiet = ProgressBar(10, enabled=False)
    quiet.show(10, "done")
    quiet.clear()
    assert stream.getvalue() == line + "\r" + " " * len(line) + "\r"
