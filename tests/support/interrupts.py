"""Commands stopped by a signal once they have demonstrably started work, as Ctrl-C or
a scheduler's SIGTERM stops them, and the command their one line says goes on."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from support.clitools import one_line

REPO = Path(__file__).resolve().parents[2]
CONTINUE = "; continue with: "


def env() -> dict[str, str]:
    """The working tree under test, whatever the caller's PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": str(REPO)}


@dataclass
class Stopped:
    status: int
    stderr: str

    def line(self, *fragments: str) -> str:
        """The one stderr line of the interrupted command (no traceback)."""
        return one_line(self.stderr, *fragments)

    def continue_command(self) -> list[str]:
        """The command the line names, with `python` as this interpreter."""
        line = self.line(CONTINUE)
        words = shlex.split(line.split(CONTINUE, 1)[1])
        assert words[0] == "python", line
        return [sys.executable, *words[1:]]


def stop_when(
    command: list[str], *, ready: Callable[[], bool], signum: int, cwd: Path, timeout: float = 180
) -> Stopped:
    """Run `command`, send it `signum` as soon as ready() holds, and wait for it to end;
    the process is killed if anything fails on the way."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=err, text=True)
        try:
            deadline = time.monotonic() + timeout
            while not ready():
                if proc.poll() is not None:
                    err.seek(0)
                    raise AssertionError(
                        f"exited ({proc.returncode}) before it was ready:\n{err.read()[-3000:]}"
                    )
                assert time.monotonic() < deadline, f"not ready after {timeout} s: {command}"
                time.sleep(0.05)
            proc.send_signal(signum)
            status = proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        return Stopped(status, err.read())
