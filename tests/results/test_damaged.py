"""collatz_ray.results on experiment files damaged in ways Ray never writes them: a
report whose epoch is a list, a string or null, a count that is no count. Each such
report is skipped with a note, and the summary goes on. Read from a copy of
tests/data/old_layout (no Ray, no search)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.clitools import run_command

from collatz_ray.results.read import load_experiment

OLD_LAYOUT = Path(__file__).resolve().parents[1] / "data" / "old_layout" / "old-layout"
TRIAL = "collatz_trial_3a711499"


@pytest.fixture
def experiment(tmp_path) -> Path:
    return Path(shutil.copytree(OLD_LAYOUT, tmp_path / "old-layout"))


def rewrite_last_report(experiment: Path, **changes) -> None:
    path = experiment / TRIAL / "result.json"
    lines = path.read_text().splitlines()
    last = json.loads(lines[-1])
    last.update(changes)
    path.write_text("\n".join(lines[:-1] + [json.dumps(last)]) + "\n")


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"epoch": [40]}, "epoch is [40], not an integer >= 0"),
        ({"epoch": "40"}, "epoch is '40', not an integer >= 0"),
        ({"epoch": None}, "epoch is None"),
        ({"epoch": -1}, "epoch is -1"),
        ({"traj_total_violations": "many"}, "traj_total_violations is 'many'"),
        ({"traj_27_length": 4.5}, "traj_27_length is 4.5"),
        ({"objective": [1]}, "objective is [1], not a number"),
        ({"traj_27_violation_steps": "0,1"}, "traj_27_violation_steps"),
        ({"loss": None}, "loss is None, not a number"),
    ],
    ids=[
        "list",
        "string",
        "null",
        "negative",
        "count-string",
        "length-float",
        "objective-list",
        "steps-string",
        "loss-null",
    ],
)
def test_a_report_the_summary_cannot_use_is_skipped_with_a_note(experiment, changes, problem):
    rewrite_last_report(experiment, **changes)
    exp = load_experiment(experiment)
    trial = next(t for t in exp.trials if t.path is not None and t.path.name == TRIAL)
    assert [r["epoch"] for r in trial.reports] == [20]  # the good report is kept
    assert any("result.json: line 2 skipped: " + problem in note for note in exp.notes), exp.notes
    for fmt in ("table", "json", "csv", "md"):
        outcome = run_command("results", experiment, "--format", fmt)
        assert outcome.status == 0, outcome.stderr
        assert "Traceback" not in outcome.stderr and problem in outcome.stderr
    data = json.loads(run_command("results", experiment, "--format", "json").stdout)
    assert data["best"]["epoch"] == 20


def test_nan_metrics_from_ray_come_out_as_null(experiment):
    path = experiment / TRIAL / "result.json"
    path.write_text(path.read_text().replace('"margin_mean": ', '"margin_mean": NaN, "was": '))
    outcome = run_command("results", experiment, "--format", "json")
    assert outcome.status == 0, outcome.stderr
    data = json.loads(outcome.stdout, parse_constant=lambda name: pytest.fail(f"bare {name}"))
    assert data["best"]["metrics"]["margin_mean"] is None
