"""train and evaluate on run directories they must not trust or must not damage: a
checkpoint holding a pickled object, a corrupted checkpoint, an existing run, a run still
going, a model whose V is NaN. In this process where a process adds nothing
(tests/clitools.py), a real one where two must run at once."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from support.clitools import run_command
from support.hostile import broken_model, corrupt, hostile_checkpoint, snapshot
from support.runs import read_metrics, without_timing

from collatz_ray.trainer.checkpoints import LOCK_FILE, load_checkpoint

REPO = Path(__file__).resolve().parents[2]


def tiny_run(eval_csv: Path) -> list[str]:
    return ["--smoke", "--eval-csv", str(eval_csv), "--epochs", "20", "--eval-interval", "10", "--quiet"]


def metrics(run_dir: Path) -> list[dict]:
    return without_timing(read_metrics(run_dir))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, eval_csv) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    outcome = run_command("train", *tiny_run(eval_csv), "--out", run_dir)
    assert outcome.status == 0, outcome.stderr
    return run_dir


def test_a_checkpoint_holding_a_pickled_object_never_runs(tmp_path):
    marker = tmp_path / "marker"
    run_dir = tmp_path / "run"
    checkpoint = hostile_checkpoint(run_dir / "checkpoints" / "epoch_00000010", marker)
    state = checkpoint / "state.pt"
    run_command("train", "--resume", run_dir).one_error_line(str(state), "refused", "pickled object")
    run_command("evaluate", "--checkpoint", checkpoint).one_error_line(str(state), "refused")
    run_command("evaluate", "--checkpoint", state, "--json").one_error_line(str(state), "refused")
    with pytest.raises(ValueError, match="refused"):
        load_checkpoint(checkpoint)
    assert not marker.exists()


def test_resume_passes_over_a_corrupted_checkpoint_and_says_so(finished, tmp_path, eval_csv):
    run_dir = Path(shutil.copytree(finished, tmp_path / "run"))
    newest = run_dir / "checkpoints" / "epoch_00000020"
    previous = run_dir / "checkpoints" / "epoch_00000010"
    corrupt(newest / "state.pt")
    run_command("evaluate", "--checkpoint", newest).one_error_line(
        f"{newest / 'state.pt'}: checksum mismatch (corrupted?)",
        f"the previous checkpoint {previous} is intact",
    )
    outcome = run_command("train", "--resume", run_dir, "--quiet")
    assert outcome.status == 0, outcome.stderr
    assert outcome.stderr.splitlines() == [
        f"collatz_ray.train: note: {newest / 'state.pt'}: checksum mismatch "
        f"(corrupted?); resuming from {previous}"
    ]
    assert metrics(run_dir) == metrics(finished)  # the lost epochs were computed again, the same


def test_an_existing_run_is_replaced_only_with_overwrite(finished, tmp_path, eval_csv):
    run_dir = Path(shutil.copytree(finished, tmp_path / "run"))
    before = snapshot(run_dir)
    run_command("train", *tiny_run(eval_csv), "--out", run_dir).one_error_line(
        "holds a run already", f"--resume {run_dir}", "--overwrite"
    )
    run_command("train", "--resume", run_dir, "--overwrite").one_error_line("--overwrite")
    assert snapshot(run_dir) == before
    outcome = run_command("train", *tiny_run(eval_csv), "--epochs", "10", "--out", run_dir, "--overwrite")
    assert outcome.status == 0, outcome.stderr
    assert [m["epoch"] for m in metrics(run_dir)] == [10]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch_00000010"]


def test_a_run_still_going_refuses_a_second_train_naming_it(tmp_path, eval_csv):
    run_dir = tmp_path / "run"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collatz_ray.train",
            *tiny_run(eval_csv),
            "--epochs",
            "1000000",
            "--eval-interval",
            "1000000",
            "--out",
            str(run_dir),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while b'"pid"' not in ((run_dir / LOCK_FILE).read_bytes() if (run_dir / LOCK_FILE).exists() else b""):
            assert first.poll() is None and time.monotonic() < deadline, "the first run never took its lock"
            time.sleep(0.1)
        holder = f"run directory {run_dir} is in use by pid {first.pid} on host {socket.gethostname()}"
        for args in (
            [*tiny_run(eval_csv), "--out", run_dir],
            [*tiny_run(eval_csv), "--out", run_dir, "--overwrite"],
            ["--resume", run_dir],
        ):
            run_command("train", *args).one_error_line(holder)
    finally:
        first.kill()
        first.wait()
    # Its lock went with it: the directory is free (and holds a run without a checkpoint).
    run_command("train", "--resume", run_dir).one_error_line("the run has no checkpoint yet")


@pytest.mark.parametrize("kind", ["nan", "inf"])
def test_evaluate_scores_a_model_with_non_finite_v_as_failing_in_valid_json(tmp_path, eval_csv, kind):
    model = broken_model(kind, layers=(8,))
    torch.save(model.state_dict(), tmp_path / "model.pth")
    outcome = run_command(
        "evaluate", "--checkpoint", tmp_path / "model.pth", "--layers", "8", "--eval-csv", eval_csv, "--json"
    )
    assert outcome.status == 0, outcome.stderr
    m = json.loads(outcome.stdout, parse_constant=lambda name: pytest.fail(f"bare {name} in --json"))
    assert m["traj_total_violations"] == 429 and m["pass_rate"] == 0.0
    assert m["margin_mean"] is None and m["margin_5pct"] is None
    text = run_command(
        "evaluate", "--checkpoint", tmp_path / "model.pth", "--layers", "8", "--eval-csv", eval_csv
    )
    assert text.status == 0 and "margin mean n/a" in text.stdout
