"""A new metric is one declaration in the metric registry (collatz_ray/trainer/metrics.py):
declared here at runtime, and with no other edit it is checked when results are read,
shown in the live status block, the results' trial table, a replication's summary, the
CSV and JSON formats, and a space may choose it as its objective. Experiments are
written by hand in Ray's layout (tests/support/experiments.py): no search is run."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.clitools import run_command
from support.experiments import replication_experiment, search_experiment, write_trial

from collatz_ray.errors import UsageError
from collatz_ray.search.objective import OBJECTIVES, objective
from collatz_ray.search.ray.status import SearchStatus
from collatz_ray.search.spaces import load_space
from collatz_ray.trainer import metrics as registry
from collatz_ray.trainer.metrics import Column, Metric, Objective

TINY = Metric(
    "traj_tiny_violations",
    "tiny violations",
    registry.COUNT,
    registry.LOWER,
    steps="traj_tiny_steps",
    live=Column("tiny"),
    table=Column("tiny", when_reported=True),
    formats=True,
    replicates=True,
    objective=Objective("tiny", "violations of the tiny trajectories"),
)
TINY_STEPS = Metric("traj_tiny_steps", "tiny steps", registry.COUNT, formats=True)


@pytest.fixture
def tiny(monkeypatch):
    """The tiny metric declared, as one declaration in the registry would be."""
    for metric in (TINY, TINY_STEPS):
        monkeypatch.setitem(registry.METRICS, metric.key, metric)


def add_to_reports(trial_folder: Path, **values) -> None:
    """The trial's reports as a trainer that computes the new metric writes them."""
    path = trial_folder / "result.json"
    reports = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**r, **values}) + "\n" for r in reports))


def space_choosing(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        objective: {kind}
        budget: {{epochs: 40, eval_interval: 20, grace_epochs: 20, reduction_factor: 2, num_samples: 2}}
        parameters:
          lookahead: {{values: [5, 10]}}
        """)
    )
    return path


def test_undeclared_it_is_no_objective_and_no_column(tmp_path):
    """What the declaration changes: without it, nothing knows the metric."""
    assert "tiny" not in OBJECTIVES
    with pytest.raises(UsageError, match="unknown objective 'tiny'"):
        load_space(space_choosing(tmp_path, "tiny"))
    assert registry.metric_of("traj_tiny_violations") is None


def test_a_declared_metric_is_an_objective_a_space_may_choose(tiny, tmp_path):
    assert OBJECTIVES["tiny"] == "traj_tiny_violations"
    assert load_space(space_choosing(tmp_path, "tiny")).objective == "tiny"
    scores = {"traj_tiny_violations": 3, "traj_total_violations": 58, "margin_5pct": 0.0}
    assert objective(scores, kind="tiny") == pytest.approx(3.5)


def test_a_declared_metric_has_a_column_in_the_live_status_block(tiny):
    result = {
        "epoch": 20,
        "traj_total_violations": 58,
        "traj_total_steps": 429,
        "traj_tiny_violations": 7,
        "traj_tiny_steps": 50,
        "pass_rate": 60.0,
        "growth_weighted_pass_rate": 55.0,
        "objective": 58.5,
    }
    trial = SimpleNamespace(
        trial_id="aaaaaaaa1", status="RUNNING", config={"lookahead": 5}, last_result=result
    )
    status = SearchStatus(parameters=["lookahead"], header="s", rungs=[20], per_trial="1 at once")
    lines = status.render([trial]).splitlines()
    header = next(line for line in lines if line.startswith("trial "))
    row = lines[lines.index(header) + 1].split()
    assert header.split()[-2:] == ["obj", "tiny"]
    assert row[header.split().index("tiny")] == "7"


def test_a_declared_metric_is_in_the_report_the_csv_and_the_json(tiny, tmp_path):
    exp = search_experiment(tmp_path / "exp")
    for trial_id, violations, tiny_count in (("aaaa", 10, 7), ("bbbb", 20, 9)):
        folder = write_trial(exp, trial_id, params={"lookahead": 5}, violations=violations)
        add_to_reports(folder, traj_tiny_violations=tiny_count, traj_tiny_steps=50)

    table = run_command("results", exp)
    assert table.status == 0, table.stderr
    # The trials table goes in parts when wider than 120 columns: the last one ends with it.
    header = [line for line in table.stdout.splitlines() if line.startswith("#  trial")][-1]
    assert header.split()[-2:] == ["objective", "tiny"]
    first = [line for line in table.stdout.splitlines() if line.startswith("1  aaaa")][-1]
    assert first.split()[-1] == "7/50"

    rows = list(csv.DictReader(io.StringIO(run_command("results", exp, "--format", "csv").stdout)))
    assert [(r["trial_id"], r["traj_tiny_violations"], r["traj_tiny_steps"]) for r in rows] == [
        ("aaaa", "7", "50"),
        ("bbbb", "9", "50"),
    ]
    data = json.loads(run_command("results", exp, "--format", "json").stdout)
    assert [t["metrics"]["traj_tiny_violations"] for t in data["trials"]] == [7, 9]


def test_a_declared_metric_is_checked_when_results_are_read(tiny, tmp_path):
    exp = search_experiment(tmp_path / "exp")
    folder = write_trial(exp, "aaaa", params={"lookahead": 5}, violations=10)
    add_to_reports(folder, traj_tiny_violations="many", traj_tiny_steps=50)
    outcome = run_command("results", exp, "--format", "json")
    assert outcome.status == 0, outcome.stderr
    assert "traj_tiny_violations is 'many', not an integer >= 0" in outcome.stderr
    assert json.loads(outcome.stdout)["best"] is None  # every report of the only trial skipped


def test_a_declared_metric_is_summarised_over_a_replication_s_seeds(tiny, tmp_path):
    exp = replication_experiment(
        tmp_path / "rep", [({"lookahead": 5}, [10, 12]), ({"lookahead": 10}, [20, 22])], seeds=(1, 2)
    )
    for seed, count in ((1, 4), (2, 6)):
        add_to_reports(exp / f"collatz_trial_c0s{seed}", traj_tiny_violations=count, traj_tiny_steps=50)
    table = run_command("results", exp)
    assert table.status == 0, table.stderr
    line = next(line for line in table.stdout.splitlines() if "tiny violations" in line)
    assert line.split()[-5:-3] == ["2/2", "5.0"]  # seeds done, mean of 4 and 6
    data = json.loads(run_command("results", exp, "--format", "json").stdout)
    assert data["replicates"]["configurations"][0]["metrics"]["traj_tiny_violations"]["mean"] == 5.0
