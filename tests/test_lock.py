"""collatz_ray._lock: one process at a time per run directory or experiment, and a lock
whose holder died is free again without anyone clearing it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from collatz_ray._lock import hold_lock
from collatz_ray.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
HOLDER = (
    "import sys, time\n"
    "from collatz_ray._lock import hold_lock\n"
    "with hold_lock(sys.argv[1], what='the thing'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(60)\n"
)


@pytest.fixture
def other_process(tmp_path):
    """Start a process that holds a lock, wait until it does; kill it at the end."""
    started = []

    def start(lock: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(lock)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        started.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def test_a_held_lock_refuses_others_naming_the_holder(tmp_path, other_process):
    lock = tmp_path / "run.lock"
    holder = other_process(lock)
    with pytest.raises(UsageError) as info:
        with hold_lock(lock, what=f"run directory {tmp_path}"):
            pass
    message = str(info.value)
    assert message.startswith(
        f"run directory {tmp_path} is in use by pid {holder.pid} on host {socket.gethostname()} (started "
    )
    assert "\n" not in message and lock.exists()


def test_a_killed_holder_leaves_the_lock_free(tmp_path, other_process):
    lock = tmp_path / "run.lock"
    holder = other_process(lock)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock.exists()  # it had no chance to remove the file, and it does not matter
    with hold_lock(lock, what="x"):
        assert str(os.getpid()) in lock.read_text()
    assert not lock.exists()


def test_reentrant_in_one_process_and_removed_at_the_end(tmp_path):
    lock = tmp_path / "run.lock"
    with hold_lock(lock, what="x"):
        with hold_lock(lock, what="x"):
            assert lock.exists()
        assert lock.exists()  # the outer block still holds it
    assert not lock.exists()
    with hold_lock(lock, what="x"):  # and again
        pass


def test_a_lock_in_a_missing_directory_is_one_line(tmp_path):
    with pytest.raises(UsageError, match="cannot create the lock file"):
        with hold_lock(tmp_path / "absent" / "run.lock", what="x"):
            pass
