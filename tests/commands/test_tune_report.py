"""What `tune` prints when a search ends (or is stopped) before any trial reported."""

from __future__ import annotations

from collatz_ray.tune import print_report


def test_no_result_says_so_and_gives_the_experiment_on_its_own_line(capsys):
    path = "/storage/" + "deep/" * 30 + "exp"
    errored = {
        "trial_id": "collatz_trial_1",
        "status": "ERROR",
        "metrics": {},
        "config": {},
        "error": "TrainingDiverged: loss became nan at epoch 2\nTraceback ...",
        "path": path,
    }
    assert print_report([errored], max_epochs=100, path=path, test_seeds=[]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[:2] == ["No trial reported a result.", f"Experiment: {path}"]
    assert lines[2] == "  collatz_trial_1: TrainingDiverged: loss became nan at epoch 2"
