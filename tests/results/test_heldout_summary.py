"""The summaries show the unseen-step and large-number counts beside the log's (best
trial and trials table), name the objective a search ranked by, and stay as they were
for experiments recorded before these metrics existed. Experiments here are written by
hand in Ray's layout: no search is run."""

from __future__ import annotations

import json
from pathlib import Path

from support.width import unwrapped

from collatz_ray.results.formats import to_csv, to_json
from collatz_ray.results.read import load_experiment
from collatz_ray.results.report import experiment_document, render_text

BUDGET = {"epochs": 40, "eval_interval": 20, "grace_epochs": 20, "reduction_factor": 2, "num_samples": 2}


def report(epoch: int, violations: int, heldout: bool) -> dict:
    metrics = {
        "epoch": epoch,
        "traj_total_violations": violations,
        "traj_total_steps": 429,
        "traj_27_violations": violations,
        "traj_27_length": 41,
        "traj_27_worst": -0.1,
        "traj_27_violation_steps": list(range(violations)),
        "pass_rate": 90.0,
        "weighted_pass_rate": 88.0,
        "growth_pass_rate": 85.0,
        "growth_weighted_pass_rate": 80.0,
        "margin_5pct": -0.01,
        "loss": 1.0,
        "objective": violations + 0.5,
        "trial_id": "t",
    }
    if heldout:
        metrics.update(
            {
                "traj_unseen_violations": violations // 2,
                "traj_unseen_steps": 158,
                "traj_big_256_violations": 30,
                "traj_big_256_steps": 2321,
                "traj_big_512_violations": 60,
                "traj_big_512_steps": 4889,
                "traj_big_1024_violations": 90,
                "traj_big_1024_steps": 10312,
                "traj_big_violations": 180,
                "traj_big_steps": 17522,
            }
        )
    return metrics


def experiment(root: Path, *, heldout: bool, objective: str | None) -> Path:
    path = root / ("new" if heldout else "old")
    path.mkdir()
    settings = {"space_name": "handmade", "budget": BUDGET}
    if objective is not None:
        settings["objective"] = objective
    (path / "collatz_search.json").write_text(json.dumps(settings))
    for trial_id, violations in (("aaa", 12), ("bbb", 30)):
        folder = path / f"collatz_trial_{trial_id}"
        folder.mkdir()
        (folder / "params.json").write_text(json.dumps({"lookahead": 10}))
        (folder / "train_config.json").write_text(json.dumps({"lookahead": 10, "epochs": 40}))
        lines = [
            {**report(e, violations + 40 - e, heldout), "trial_id": trial_id, "done": e == 40}
            for e in (20, 40)
        ]
        (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_the_best_trial_and_the_trials_table_show_the_heldout_counts(tmp_path):
    exp = load_experiment(experiment(tmp_path, heldout=True, objective="unseen"))
    text = render_text(experiment_document(exp, [], top=10))
    assert "the log's held-out steps" in text and "unseen steps" in text
    best_rows = [
        line.split()
        for line in text.splitlines()
        if line.startswith(("unseen steps", "1024-bit seeds", "large numbers, all"))
    ]
    assert best_rows == [
        ["unseen", "steps", "6", "158", "3.8%"],
        ["1024-bit", "seeds", "90", "10312", "0.9%"],
        ["large", "numbers,", "all", "180", "17522", "1.0%"],
    ]
    header = next(line for line in text.splitlines() if line.startswith("#"))
    assert header.split()[5:9] == ["violations", "unseen", "big", "pass"]
    first = next(line for line in text.splitlines() if line.startswith("1 "))
    assert "12/429" in first and "6/158" in first and "180/17522" in first
    assert max(len(line) for line in text.splitlines() if line.startswith(("#", "1 ", "2 "))) < 120
    assert "objective (violations of the unseen held-out steps plus a margin tie-break)" in unwrapped(text)


def test_machine_readable_forms_carry_the_counts(tmp_path):
    exp = load_experiment(experiment(tmp_path, heldout=True, objective=None))
    data = json.loads(to_json([exp]))
    assert data["trials"][0]["metrics"]["traj_unseen_violations"] == 6
    assert data["trials"][0]["metrics"]["traj_big_steps"] == 17522
    header = to_csv([exp]).splitlines()[0].split(",")
    assert {"traj_unseen_violations", "traj_unseen_steps", "traj_big_violations", "traj_big_steps"} <= set(
        header
    )


def test_older_experiments_read_as_before(tmp_path):
    exp = load_experiment(experiment(tmp_path, heldout=False, objective=None))
    text = render_text(experiment_document(exp, [], top=10))
    assert "unseen" not in text and "large numbers" not in text
    header = next(line for line in text.splitlines() if line.startswith("#"))
    assert header.split()[5:7] == ["violations", "pass"]
    assert "objective (violations of the log's held-out steps plus a margin tie-break)" in unwrapped(text)
