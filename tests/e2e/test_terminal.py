"""What a person sees: a search in a real pseudo-terminal 120 columns wide, interrupted
with Ctrl-C and resumed with the command it printed."""

from __future__ import annotations

import io
import os
import re
import shlex
import sys
import time

import pexpect
from support.searches import worker_reports

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
WIDTH = 120


def _screen_lines(text: str) -> list[str]:
    return [ANSI.sub("", line).rstrip().removeprefix("^C") for line in text.replace("\r\n", "\n").split("\n")]


def _spawn(args: list[str], cwd) -> pexpect.spawn:
    """The search in a terminal; everything it shows is kept in `child.logfile_read`."""
    env = {**os.environ, "RAY_ADDRESS": "local", "COLUMNS": str(WIDTH), "LINES": "40"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "collatz_ray.tune", *args],
        cwd=str(cwd),
        env=env,
        dimensions=(40, WIDTH),
        encoding="utf-8",
        codec_errors="replace",
        timeout=300,
    )
    child.logfile_read = io.StringIO()
    return child


def test_ctrl_c_stops_cleanly_and_the_printed_resume_finishes(tmp_path, eval_csv):
    args = [
        "--space",
        "full",
        "--smoke",
        "--num-samples",
        "2",
        "--epochs",
        "200",
        "--storage",
        str(tmp_path / "results"),
        "--name",
        "tty",
        "--eval-csv",
        str(eval_csv),
        "--seed",
        "1",
    ]
    child = _spawn(args, tmp_path)
    child.expect(r"Columns: ")  # the legend, printed once
    # Ctrl-C once a trial is past its start-up and reports (its worker's first checkpoint;
    # the status block that would say "training" comes only every 30 s).
    deadline = time.monotonic() + 300
    while not worker_reports(tmp_path / "results" / "tty"):
        assert time.monotonic() < deadline, "no trial reported within 300 s"
        child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.2)  # read what it prints meanwhile
        assert child.isalive(), "the search ended before a trial reported"
    child.sendintr()  # Ctrl-C
    child.expect(pexpect.EOF)
    child.close()
    seen = child.logfile_read.getvalue()
    first = _screen_lines(seen)
    assert child.exitstatus == 130, (child.exitstatus, child.signalstatus)
    resume = [line for line in first if "Resume with: " in line]
    assert resume, "no resume hint"
    assert "Tuner.restore" not in seen
    command = shlex.split(resume[-1].split("Resume with: ", 1)[1])
    assert command[:3] == ["python", "-m", "collatz_ray.tune"] and "--resume" in command

    child = _spawn(command[3:], tmp_path)
    child.expect(pexpect.EOF)
    child.close()
    shown = child.logfile_read.getvalue()
    assert child.exitstatus == 0, shown[-3000:]
    second = _screen_lines(shown)
    assert any(line.startswith("Best trial ") for line in second)
    assert any(line.startswith("Experiment: ") for line in second)

    # Lines that show a path are as long as the path.
    paths = ("Experiment: ", "Summaries: ", "collatz_ray.tune: ", "Optuna study: ", "Tracking: ")
    status = [line for line in first + second if line and not line.startswith(paths)]
    too_wide = [
        line for line in status if len(line) > WIDTH and "WARNING" not in line and "(raylet)" not in line
    ]
    assert not too_wide, "\n".join(too_wide[:5])
    assert sum("Columns: " in line for line in first) == 1
