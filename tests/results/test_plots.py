"""python -m collatz_ray.results --plot on a real experiment (the session's smoke search,
conftest.smoke_experiment): the search's charts, and V along the best trial's held-out
trajectories computed from its real checkpoint, counting the violations the trial
reported. A checkpoint it cannot use, or no torch, costs that view alone, in one line."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.clitools import run_command

from collatz_ray.results.export import newest_checkpoint
from collatz_ray.results.plots import TRAJECTORY_FILES
from collatz_ray.results.read import load_experiment
from collatz_ray.results.report import best_trial
from collatz_ray.results.trajectories import best_trajectories

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = (
    "violations_by_epoch.png",
    "violations_by_parameter.png",
    "parallel_coordinates.png",
    "parameter_importance.png",
)
SKIPPED = "no trajectory view of the best trial: "


def wrote(err: str, png: Path) -> str:
    """The count the command gave for a trajectory picture it wrote."""
    found = re.search(rf"^wrote {re.escape(str(png))} \((.*)\)$", err, re.MULTILINE)
    assert found, err
    return found.group(1)


def copy_experiment(smoke_experiment: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(smoke_experiment, tmp_path / "smoke"))


def test_plot_writes_the_charts_and_the_best_trial_s_trajectories_with_its_counts(smoke_experiment, tmp_path):
    experiment = copy_experiment(smoke_experiment, tmp_path)
    outcome = run_command("results", experiment, "--plot")
    err = outcome.stderr
    assert outcome.status == 0, err
    assert SKIPPED not in err and "Traceback" not in err
    for name in (*PLOTS, *TRAJECTORY_FILES.values()):
        data = (experiment / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name
    for name in PLOTS:
        assert f"wrote {experiment / name}\n" in err

    exp = load_experiment(experiment)
    reported = best_trial(exp).metrics
    log = reported["traj_total_violations"], reported["traj_total_steps"]
    big = reported["traj_big_violations"], reported["traj_big_steps"]
    assert wrote(err, experiment / TRAJECTORY_FILES["log"]) == f"{log[0]} of {log[1]} steps violate"
    assert wrote(err, experiment / TRAJECTORY_FILES["big"]) == f"{big[0]} of {big[1]} steps violate"

    # The data drawn, step by step: the trial's own violation steps, and its per-bit counts.
    best = best_trajectories(exp)
    assert best.epoch == best_trial(exp).epoch
    assert (best.violations("log"), best.violations("big")) == (log, big)
    for t in best.sets["log"]:
        assert list(t.violation.nonzero()[0]) == reported[f"traj_{t.seed}_violation_steps"]
        assert int((t.violation & t.growth).sum()) == reported[f"traj_{t.seed}_growth_violations"]
        assert len(t.v) == len(t.values) == reported[f"traj_{t.seed}_length"] + 1
    for bits in (256, 512, 1024):
        group = [t for t in best.sets["big"] if t.seed.bit_length() == bits]
        assert len(group) == 4
        assert sum(int(t.violation.sum()) for t in group) == reported[f"traj_big_{bits}_violations"]
    # Growth steps are exactly those where the value rises: odd n -> (3n+1)/2, k = 1.
    t = best.sets["log"][0]
    assert [b > a for a, b in zip(t.values, t.values[1:])] == list(t.growth)
    assert all((3 * a + 1) // 2 == b for a, b, g in zip(t.values, t.values[1:], t.growth) if g)


def corrupt(checkpoint: Path) -> str:
    state = checkpoint / "state.pt"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF
    state.write_bytes(bytes(data))
    return "state.pt: checksum mismatch (corrupted?)"


def truncate_unchecked(checkpoint: Path) -> str:
    """A checkpoint from before checksums, cut short on its way to shared storage."""
    (checkpoint / "checksum.json").unlink()
    state = checkpoint / "state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    return "state.pt: not a readable PyTorch file"


def remove_all(checkpoint: Path) -> str:
    """Every checkpoint of the trial gone (Ray's storage cleaned up, say)."""
    for folder in checkpoint.parent.glob("checkpoint_*"):
        shutil.rmtree(folder)
    return "no reported checkpoint found under"


@pytest.mark.parametrize("damage", [corrupt, truncate_unchecked, remove_all])
def test_an_unusable_checkpoint_costs_the_trajectory_view_alone(smoke_experiment, tmp_path, damage):
    experiment = copy_experiment(smoke_experiment, tmp_path)
    exp = load_experiment(experiment)
    checkpoint, _ = newest_checkpoint(exp, best_trial(exp))
    # Reports name their checkpoint by the folder in the trial's own: the copy's, not the original's.
    assert checkpoint.parent.parent == experiment
    reason = damage(checkpoint)

    outcome = run_command("results", experiment, "--plot")
    err = outcome.stderr
    assert outcome.status == 0 and outcome.stdout.startswith(f"Experiment {experiment.name}\n")
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if SKIPPED in line]
    assert line.startswith(f"note: {experiment.name}: {SKIPPED}") and reason in line
    for name in PLOTS:
        assert (experiment / name).read_bytes().startswith(PNG_MAGIC)
    for name in TRAJECTORY_FILES.values():
        assert not (experiment / name).exists()


def test_without_torch_the_other_charts_are_drawn_and_one_line_says_why(smoke_experiment, tmp_path):
    experiment = copy_experiment(smoke_experiment, tmp_path)
    # None in sys.modules makes `import torch` fail as it does where torch is not installed.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from collatz_ray.results.__main__ import main\n"
        f"sys.exit(main([{str(experiment)!r}, '--plot']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if SKIPPED in line]
    assert (
        line
        == f"note: {experiment.name}: {SKIPPED}computing V needs torch (import of torch halted; None in sys.modules)"
    )
    for name in PLOTS:
        assert (experiment / name).read_bytes().startswith(PNG_MAGIC)
    assert not any((experiment / name).exists() for name in TRAJECTORY_FILES.values())
