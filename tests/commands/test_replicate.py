"""python -m collatz_ray.replicate (and tune --replicate-top) in this process: the plan
it prints, and bad input refused in one line with exit status 2 before Ray starts.
Sources are experiments written by hand (tests/experiments.py); tests/e2e/test_replicate_ray.py
runs a replication on Ray."""

from __future__ import annotations

import json
import sys

import pytest
from support.clitools import run_command
from support.experiments import replication_experiment, search_experiment, write_trial

A = {"lookahead": 10, "target_type": "fixed", "mine_negatives": False}
B = {"lookahead": 20, "target_type": "split", "mine_negatives": True, "mine_interval": 20}


@pytest.fixture
def storage(tmp_path):
    """results/src: three finished trials of two configurations (B best), one errored."""
    src = search_experiment(tmp_path / "results" / "src")
    write_trial(src, "a1", params=A, violations=12)
    write_trial(src, "b1", params=B, violations=8)
    write_trial(src, "a2", params=A, violations=15)
    write_trial(src, "e1", params=B, violations=3, epoch=20, error="RuntimeError: diverged", done=False)
    return tmp_path / "results"


def ray_started() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def test_dry_run_prints_the_plan(storage):
    outcome = run_command(
        "replicate",
        "src",
        "--top",
        "2",
        "--seeds",
        "3",
        "--storage",
        storage,
        "--name",
        "follow",
        "--dry-run",
    )
    assert outcome.status == 0, outcome.stderr
    assert outcome.stdout.splitlines() == [
        "Replicate 2 configurations of 'smoke' x 3 seeds (1, 2, 3): 6 trials x 60 epochs, the full "
        "budget, no early stopping",
        "  1. lookahead=20, target_type=split, mine_negatives=true, mine_interval=20 (source trial b1)",
        "  2. lookahead=10, target_type=fixed, mine_negatives=false (source trials a1, a2)",
        f"Source: {storage.resolve() / 'src'}",
        f"Experiment: {storage.resolve() / 'follow'}",
    ]
    assert not (storage / "follow").exists() and not ray_started()


def test_tune_replicate_top_is_the_same_command(storage):
    direct = run_command(
        "replicate",
        storage / "src",
        "--top",
        "1",
        "--seeds",
        "2",
        "--name",
        "f",
        "--storage",
        storage,
        "--dry-run",
    )
    via_tune = run_command(
        "tune",
        "--replicate-top",
        "1",
        "--seeds",
        "2",
        storage / "src",
        "--name",
        "f",
        "--storage",
        storage,
        "--dry-run",
    )
    assert via_tune.status == direct.status == 0, via_tune.stderr
    assert via_tune.stdout == direct.stdout
    assert run_command(
        "tune", "--replicate-top=9", "--seeds", "2", "src", "--storage", storage
    ).one_error_line("--top 9: experiment", "has 3 finished trials (2 distinct configurations)")


def test_given_configurations_need_a_space_and_are_planned_over_it(tmp_path):
    outcome = run_command(
        "replicate",
        "--space",
        "smoke",
        "--config",
        "lookahead=5",
        "--config",
        "lookahead=20,layers=8,8",
        "--seeds",
        "2",
        "--epochs",
        "40",
        "--storage",
        tmp_path,
        "--name",
        "study",
        "--dry-run",
    )
    assert outcome.status == 0, outcome.stderr
    assert outcome.stdout.splitlines()[:3] == [
        "Replicate 2 configurations of 'smoke' x 2 seeds (1, 2): 4 trials x 40 epochs, the full budget, "
        "no early stopping",
        "  1. lookahead=5",
        "  2. lookahead=20, layers=8,8",
    ]


BAD = [
    # (arguments after the storage, fragments of the one error line)
    (["nothere", "--top", "1", "--seeds", "2"], ["nothere: no experiment of that name under"]),
    (["src", "--top", "3", "--seeds", "2"], ["--top 3: experiment", "has 3 finished trials (2 distinct"]),
    (["src", "--top", "1", "--seeds", "1"], ["--seeds: expected an integer >= 2", "got '1'"]),
    (["src", "--top", "1", "--seeds", "two"], ["--seeds: expected an integer >= 2"]),
    (["src", "--top", "0", "--seeds", "2"], ["--top: expected an integer >= 1"]),
    (["src", "--top", "1"], ["--seeds S is required"]),
    (["src", "--seeds", "2"], ["--top K is required"]),
    (["--seeds", "2"], ["name the experiment to replicate"]),
    (["src", "--top", "1", "--seeds", "2", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["src", "--top", "1", "--seeds", "2", "--epochs", "10"], ["--epochs: only with --config"]),
    (["src", "--top", "1", "--seeds", "2", "--config", "lookahead=5"], ["--config replicates given"]),
    (["--config", "lookahead=5", "--seeds", "2"], ["--config needs --space"]),
    (["--space", "smoke", "--config", "lookahead=0", "--seeds", "2"], ["--config lookahead=0: lookahead"]),
    (["--space", "smoke", "--config", "lookahead", "--seeds", "2"], ["expected KEY=VALUE"]),
    (
        ["--space", "smoke", "--smoke", "--scale", "laptop", "--config", "lookahead=5", "--seeds", "2"],
        ["choose one"],
    ),
    (
        ["src", "--top", "1", "--seeds", "2", "--name", "src"],
        ["--name src: an experiment of that name exists"],
    ),
    (["src", "--top", "1", "--seeds", "2", "--name", "../x"], ["--name"]),
    (["src", "--top", "1", "--seeds", "2", "--eval-csv", "/nonexistent.csv"], ["/nonexistent.csv"]),
    (["--resume", "--top", "1"], ["--resume needs --name"]),
    (["--resume", "--name", "src", "--seeds", "2"], ["drop --seeds"]),
    (["--resume", "--name", "gone"], ["--resume --name gone: no experiment of that name"]),
    (
        ["--resume", "--name", "src"],
        ["not a replication (no replicate plan)", "python -m collatz_ray.tune --resume --name src"],
    ),
]


@pytest.mark.parametrize("args, fragments", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_before_ray(storage, args, fragments):
    run_command("replicate", *args, "--storage", storage).one_error_line(*fragments)
    assert not ray_started()


def test_a_source_without_settings_or_with_damaged_ones_is_refused(storage):
    (storage / "src" / "collatz_search.json").unlink()
    run_command("replicate", "src", "--top", "1", "--seeds", "2", "--storage", storage).one_error_line(
        "no collatz_search.json, so its space and budget are unknown"
    )
    (storage / "src" / "collatz_search.json").write_text("{not json")
    run_command("replicate", "src", "--top", "1", "--seeds", "2", "--storage", storage).one_error_line(
        "collatz_search.json: not a collatz-ray settings file"
    )


def test_a_replication_with_a_damaged_plan_is_not_resumed(storage):
    follow = replication_experiment(storage / "follow", [(A, [1, 2])], seeds=(1, 2))
    settings = json.loads((follow / "collatz_search.json").read_text())
    settings["replicate"]["seeds"] = "all"
    (follow / "collatz_search.json").write_text(json.dumps(settings))
    run_command("replicate", "--resume", "--name", "follow", "--storage", storage).one_error_line(
        "follow/collatz_search.json: replicate: seeds: expected a list of integers"
    )
