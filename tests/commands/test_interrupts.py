"""Ctrl-C and SIGTERM in the commands that run without Ray: exit status 130 or 143, one
line on stderr that says what was kept and, where something was, the exact command that
goes on, which then continues and finishes. verify and train run as real processes
signalled once their work has visibly begun (a progress file, a checkpoint); the
commands that keep nothing are signalled in this process as their work starts. (tune and
replicate stop Ray cleanly: tests/e2e.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.clitools import run_command
from support.interrupts import env, stop_when
from support.runs import tiny_config

from collatz_ray.trainer.loop import train

SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143)]
IDS = ["SIGINT", "SIGTERM"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, eval_csv) -> Path:
    directory = tmp_path_factory.mktemp("interrupts") / "run"
    config = tiny_config(eval_csv)
    train(config, run_dir=directory, verbose=False)
    return directory


def finish(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.parametrize("signum, status", SIGNALS, ids=IDS)
def test_a_stopped_scan_names_its_progress_and_the_command_that_finishes_it(run, tmp_path, signum, status):
    out = tmp_path / "scan.json"
    progress = tmp_path / "scan.json.progress"
    args = ["--checkpoint", str(run), "--range", "3..2**18", "--chunk", "2**11", "--out", str(out)]

    def started() -> bool:
        return progress.exists() and bool(json.loads(progress.read_text())["done"])

    stopped = stop_when(
        [sys.executable, "-m", "collatz_ray.verify", *args], ready=started, signum=signum, cwd=tmp_path
    )
    assert stopped.status == status
    kept = len(json.loads(progress.read_text())["done"])
    stopped.line(
        f"collatz_ray.verify: interrupted by {signum.name}; {kept} of 64 chunks are kept in {progress}"
    )
    assert 0 < kept < 64 and not out.exists()
    again = stopped.continue_command()
    assert again[1:] == ["-m", "collatz_ray.verify", *args]

    report = json.loads(finish([*again, "--json"], tmp_path).stdout)
    assert report["complete"] and report["numbers"] == 2**17 - 1
    assert 0 < report["numbers_this_run"] < report["numbers"]


@pytest.mark.parametrize("signum, status", SIGNALS, ids=IDS)
def test_a_stopped_training_names_its_checkpoint_and_the_resume_that_finishes_it(
    tmp_path, eval_csv, signum, status
):
    checkpoints = tmp_path / "run" / "checkpoints"
    command = [sys.executable, "-m", "collatz_ray.train", "--smoke", "--quiet", "--out", "run"]
    command += ["--epochs", "60", "--eval-interval", "20", "--eval-csv", str(eval_csv)]
    stopped = stop_when(
        command, ready=lambda: any(checkpoints.glob("epoch_*/state.pt")), signum=signum, cwd=tmp_path
    )
    assert stopped.status == status
    line = stopped.line(
        f"collatz_ray.train: interrupted by {signum.name}; the run is kept up to run/checkpoints/"
    )
    again = stopped.continue_command()
    assert again[1:] == ["-m", "collatz_ray.train", "--resume", "run"], line
    newest = max(checkpoints.glob("epoch_*"))
    assert newest.name != "epoch_00000060"

    finish([*again, "--quiet"], tmp_path)
    assert max(checkpoints.glob("epoch_*")).name == "epoch_00000060"


def signal_on_call(monkeypatch, module: object, name: str, signum: int) -> None:
    """module.name sends this process `signum` as the command's work begins."""

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signum)
        raise AssertionError(f"{name} ran on after {signum.name}")

    monkeypatch.setattr(module, name, signalled)


@pytest.mark.parametrize("signum, status", SIGNALS, ids=IDS)
@pytest.mark.parametrize("tool", ["evaluate", "evalset", "results", "bench"])
def test_commands_that_keep_nothing_say_so_in_one_line(run, tmp_path, monkeypatch, tool, signum, status):
    import collatz_ray.benchmarks.speed
    import collatz_ray.evalset
    import collatz_ray.results.__main__
    import collatz_ray.trainer.loading

    target, args = {
        "evaluate": ((collatz_ray.trainer.loading, "load_model"), ["--checkpoint", run]),
        "evalset": ((collatz_ray.evalset, "write_evalset"), ["--samples", "10", "--out", tmp_path / "e.csv"]),
        "results": ((collatz_ray.results.__main__, "load_experiment"), [tmp_path]),
        "bench": ((collatz_ray.benchmarks.speed, "run_benchmarks"), ["--quick"]),
    }[tool]
    signal_on_call(monkeypatch, *target, signum)
    outcome = run_command(tool, *args)
    assert outcome.status == status, outcome.stderr
    assert outcome.stderr.splitlines() == [
        f"collatz_ray.{tool}: interrupted by {signum.name}; nothing was kept: run the command again"
    ]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are given back


def test_a_search_stopped_while_ray_starts_is_one_line(tmp_path, eval_csv):
    """SIGTERM once the search process has loaded Ray (its _raylet library mapped), which
    is while Ray starts or, on a fast machine, just after: either way one line and 143,
    never a traceback (search/ray/interrupt.py takes over only once Ray is up)."""
    command = [sys.executable, "-m", "collatz_ray.tune", "--space", "smoke", "--smoke", "--eval-csv"]
    command += [str(eval_csv), "--storage", str(tmp_path / "store"), "--name", "early"]
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    maps = Path(f"/proc/{proc.pid}/maps")
    try:
        while "_raylet" not in maps.read_text(errors="replace"):
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err.decode()[-3000:]
    (line,) = err.decode().strip().splitlines()
    assert line.startswith("collatz_ray.tune: interrupted by SIGTERM"), line
