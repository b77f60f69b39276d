"""`python -m collatz_ray.scan_trials`: every finished trial of a real (small) experiment
scanned exactly, with the same counts `verify` finds for its checkpoint; scanned once
however often it runs; its counterexamples banked once; the report of the scans."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.clitools import run_command

from collatz_ray.results.export import newest_checkpoint
from collatz_ray.results.read import load_experiment
from collatz_ray.results.scans import scan_file
from collatz_ray.trainer.bank import BANK_FILE

SCAN = ("--range", "3..2**12", "--random", "64:300", "--random", "256:100", "--first", "5")


@pytest.fixture
def experiment(smoke_experiment, tmp_path) -> Path:
    """A copy of the session's smoke search (4 real trials, their checkpoints kept)."""
    return Path(shutil.copytree(smoke_experiment, tmp_path / "smoke"))


def finished(experiment: Path) -> list:
    return [t for t in load_experiment(experiment).trials if t.ending.kind in ("completed", "stopped")]


def test_each_finished_trial_is_scanned_as_verify_scans_its_checkpoint(experiment, tmp_path):
    markdown, plot = tmp_path / "scans.md", tmp_path / "pareto.png"
    outcome = run_command("scan_trials", experiment, *SCAN, "--bank", "--markdown", markdown, "--plot", plot)
    assert outcome.status == 0, outcome.stderr
    trials = finished(experiment)
    assert len(trials) >= 2
    for trial in trials:
        saved = json.loads(scan_file(experiment, trial.trial_id).read_text())
        checkpoint, epoch = newest_checkpoint(load_experiment(experiment), trial)
        assert saved["epoch"] == epoch
        for name, flags in (("range", SCAN[:2]), ("random", SCAN[2:6])):
            verified = run_command("verify", "--checkpoint", checkpoint, *flags, "--json")
            assert verified.status == 0, verified.stderr
            expected = json.loads(verified.stdout)
            assert saved["scans"][name]["violations"] == expected["violations"]
            assert saved["scans"][name]["buckets"] == expected["buckets"]
        assert f"{experiment.name}/{trial.trial_id}; {saved['parameters']:,} parameters" in outcome.stdout
    assert "## Which held-out count predicts the scan" in outcome.stdout
    assert markdown.read_text() in outcome.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    banked = (experiment / BANK_FILE).read_text().splitlines()
    scanned = [json.loads(line) for line in banked if json.loads(line)["source"] == "verify"]
    assert {r["trial"] for r in scanned} == {t.trial_id for t in trials}

    # Run again: nothing is scanned or banked twice; the report is the same.
    stamps = {p: p.stat().st_mtime_ns for p in (experiment / "scans").iterdir()}
    again = run_command("scan_trials", experiment, *SCAN, "--bank")
    assert again.status == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in (experiment / "scans").iterdir()} == stamps
    assert (experiment / BANK_FILE).read_text().splitlines() == banked
    assert "parameters; range:" not in again.stdout
    assert again.stdout and again.stdout in outcome.stdout


def test_other_flags_over_old_scans_and_bad_input_are_one_line(experiment, tmp_path):
    assert run_command("scan_trials", experiment, *SCAN).status == 0
    run_command("scan_trials", experiment, "--range", "3..2**13").one_error_line(
        ".json: a scan of another checkpoint or with other flags"
    )
    run_command("scan_trials", tmp_path, "--range", "3..99").one_error_line("not an experiment directory")
    run_command("scan_trials", experiment, "--range", "1..99").one_error_line("--range 1..99")
    run_command("scan_trials", experiment, "--range", "3..2**80").one_error_line(
        "--range: about 2**78 numbers"
    )
    run_command("scan_trials", experiment, "--markdown", tmp_path / "no" / "x.md").one_error_line(
        "no directory"
    )


def test_a_trial_without_its_checkpoint_is_named_and_the_rest_reported(old_layout_experiment):
    """This experiment's checkpoints predate model.pth: no trial of it can be scanned."""
    outcome = run_command("scan_trials", old_layout_experiment, *SCAN)
    assert outcome.status == 0, outcome.stderr
    assert "old-layout/3a711499: not scanned: trial 3a711499: no reported checkpoint found" in outcome.stdout
    assert "No scanned trials yet" in outcome.stdout
