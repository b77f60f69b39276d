"""`python -m collatz_ray.tune` sizes a search from flags (--epochs scales the evaluation
interval and grace period, --scale shrinks a space) and prints its plan with --dry-run
without training or starting Ray. Calibration is stubbed here except in the one
subprocess test, which times the real trainer."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.clitools import run_command

from collatz_ray.search import calibrate
from collatz_ray.search.spaces import load_space

REPO = Path(__file__).resolve().parents[2]
OLD_LAYOUT = REPO / "tests" / "data" / "old_layout"


@pytest.fixture
def stub_machine(monkeypatch):
    """A 4-CPU machine without GPUs whose trainer runs every epoch in 10 ms."""

    def fake_calibrate(space, *, threads, device, eval_rows, seconds=None):
        return calibrate.Calibration(
            config=calibrate.costliest_config(space),
            epoch_s=0.01,
            epoch_cpu_s=0.01,
            epochs=400,
            eval_s=0.5,
            eval_rows=eval_rows,
            device=device,
            threads=threads,
            seconds=4.0,
            load=0.0,
            cpus=4,
        )

    monkeypatch.setattr(calibrate, "calibrate", fake_calibrate)
    monkeypatch.setattr(calibrate, "local_resources", lambda: {"CPU": 4.0, "GPU": 0.0})


def tune(tmp_path, *args):
    return run_command("tune", "--storage", tmp_path / "results", *args)


def test_the_issues_command_plans_with_scaled_evaluations(tmp_path, stub_machine):
    outcome = tune(
        tmp_path,
        "--space",
        "lookahead",
        "--epochs",
        3000,
        "--num-samples",
        4,
        "--grace-epochs",
        1000,
        "--dry-run",
    )
    assert outcome.status == 0, outcome.stderr
    out = outcome.stdout
    assert "trials:     4, each at most 3000 epochs, evaluated every 150 (20 evaluations)" in out
    assert "eval_interval 5000->150 scaled with --epochs 3000" in out
    assert "rungs at epochs 1000 (judged at 1050), then the end at 3000" in out
    assert "per trial:  1 CPU + 0 GPU (1 torch thread)" in out
    assert "at once:    4 (this machine's 4 CPUs" in out
    assert f"results:    {tmp_path / 'results'}/lookahead-<start time>" in out
    # 4 trials fit at once: one trial's time, plus starting Ray.
    assert re.search(
        r"time:       about \d+ s; an estimate = 4 trials x \(4 s start \+ \d+ epochs x 10 ms", out
    )
    assert not (tmp_path / "results").exists(), "a dry run creates nothing"
    # A person's terminal: 120 columns, paths excepted (they have no space to break at).
    assert [line for line in out.splitlines() if len(line) > 120 and str(tmp_path) not in line] == []


def test_a_flag_is_named_for_its_own_value(tmp_path):
    outcome = tune(tmp_path, "--space", "lookahead", "--epochs", 3000, "--eval-interval", 5000)
    assert (
        outcome.one_error_line()
        == "collatz_ray.tune: error: --eval-interval 5000: expected at most --epochs (3000)"
    )


def test_laptop_scale_plan(tmp_path, stub_machine):
    outcome = tune(tmp_path, "--space", "model_size", "--scale", "laptop", "--dry-run")
    assert outcome.status == 0, outcome.stderr
    out = outcome.stdout
    assert "Search 'model_size-laptop'" in out and "--scale laptop" in out
    assert "trials:     24, each at most 50000 epochs, evaluated every 2500 (20 evaluations)" in out
    assert "rungs at epochs 10000, 30000, then the end at 50000" in out
    assert "scale:      layers (searched):" in out and "256, 128, 128, 64, 64, 64, 32, 16, 16]" in out
    assert "scale:      batch_size: 1024 -> 256" in out


def test_smoke_dry_run_and_a_cluster_left_alone(tmp_path, stub_machine):
    outcome = tune(tmp_path, "--space", "lookahead", "--smoke", "--address", "auto", "--dry-run")
    assert outcome.status == 0, outcome.stderr
    assert "Search 'lookahead-smoke'" in outcome.stdout
    assert "a dry run does not contact the cluster" in outcome.stdout
    assert "one trial at a time; divide by the trials at once" in outcome.stdout
    fixed = tune(
        tmp_path,
        "--space",
        "lookahead",
        "--smoke",
        "--address",
        "10.0.0.1:6379",
        "--max-concurrent",
        3,
        "--dry-run",
    )
    assert "at once:    3 (--max-concurrent)" in fixed.stdout


@pytest.mark.parametrize(
    "flags, fragments",
    [
        (["--smoke", "--scale", "laptop"], ["--smoke and --scale laptop: choose one"]),
        (["--scale", "huge"], ["--scale", "invalid choice: 'huge'"]),
        (["--reduction-factor", "1"], ["--reduction-factor", "expected an integer >= 2"]),
        (["--eval-interval", "0"], ["--eval-interval", "expected an integer >= 1"]),
        (["--grace-epochs", "200000"], ["--grace-epochs 200000: expected at most budget.epochs of"]),
        (["--gpus-per-trial", "1", "--dry-run"], ["--gpus-per-trial 1: the cluster has no GPUs"]),
    ],
)
def test_bad_sizing_is_one_line(tmp_path, stub_machine, flags, fragments):
    tune(tmp_path, "--space", "lookahead", *flags).one_error_line(*fragments)
    assert not (tmp_path / "results").exists()


@pytest.fixture
def experiment(tmp_path, eval_csv) -> Path:
    """A copy of a small real experiment whose evaluation CSV exists here."""
    shutil.copytree(OLD_LAYOUT, tmp_path / "store")
    path = tmp_path / "store" / "old-layout"
    settings = path / "collatz_search.json"
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "eval_csv": str(eval_csv)}))
    return path


def test_a_resume_plans_with_its_saved_budget(experiment, stub_machine):
    outcome = run_command(
        "tune",
        "--resume",
        "--name",
        experiment.name,
        "--storage",
        experiment.parent,
        "--epochs",
        60,
        "--dry-run",
    )
    assert outcome.status == 0, outcome.stderr
    out = outcome.stdout
    assert "Search 'smoke' (" in out and "resumed" in out
    assert "trials:     3, each at most 60 epochs, evaluated every 20" in out  # not scaled on a resume
    assert "epochs 40->60 by flags" in out
    refusal = run_command(
        "tune",
        "--resume",
        "--name",
        experiment.name,
        "--storage",
        experiment.parent,
        "--eval-interval",
        10,
        "--dry-run",
    )
    refusal.one_error_line("--eval-interval 10: experiment old-layout runs with eval_interval 20")


def test_a_real_dry_run_imports_no_ray_and_writes_nothing(tmp_path, eval_csv):
    """One subprocess, with the real calibration: a few epochs of the smoke model."""
    code = (
        "import sys, collatz_ray.tune as t; status = t.main(sys.argv[1:]); "
        "print('ray imported:', 'ray' in sys.modules); sys.exit(status)"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "--space",
            "lookahead",
            "--smoke",
            "--dry-run",
            "--eval-csv",
            str(eval_csv),
            "--storage",
            str(tmp_path / "results"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ray imported: False" in proc.stdout
    assert "rungs at epochs 40, then the end at 80" in proc.stdout
    assert re.search(
        r"calibrated: \d+ epochs of the costliest config the space samples \(lookahead 300, "
        r"layers 16x16, batch 128\)",
        proc.stdout,
    ), proc.stdout
    assert "an evaluation of 500 rows" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing written where it ran"


def _documented_commands() -> list[str]:
    commands = []
    for doc in ("README.md", "docs/search.md", "docs/spaces.md"):
        for line in (REPO / doc).read_text().splitlines():
            line = line.strip().split("  #")[0].strip()
            if line.startswith("python -m collatz_ray.tune "):
                commands.append(line)
    return commands


# --resume and --extend need an experiment: test_docs_commands.py runs them on a fixture.
@pytest.mark.parametrize(
    "command", [c for c in _documented_commands() if "--resume" not in c and "--extend" not in c]
)
def test_documented_commands_plan(tmp_path, stub_machine, command):
    """Every search command the docs show (but those resuming an experiment that only the
    reader has) plans without complaint."""
    args = shlex.split(command)[3:]
    if "--storage" not in args:
        args += ["--storage", str(tmp_path / "results")]
    outcome = run_command("tune", *args, "--dry-run")
    assert outcome.status == 0, (command, outcome.stderr)
    assert "Dry run" in outcome.stdout


def test_the_laptop_scale_of_every_shipped_space_is_planned(tmp_path, stub_machine):
    for name in ("lookahead", "beta", "mining", "model_size", "constraints", "full"):
        space = load_space(name).laptop()
        outcome = tune(tmp_path, "--space", name, "--scale", "laptop", "--dry-run")
        assert outcome.status == 0, outcome.stderr
        assert f"trials:     {space.budget.num_samples}, each at most 50000 epochs" in outcome.stdout
