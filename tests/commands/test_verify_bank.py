"""`python -m collatz_ray.verify --bank EXPERIMENT`: the counterexamples listed go into the
experiment's bank, tagged with the checkpoint's sha256 and epoch (and its trial when it
is one of the experiment's own), once however often the scan runs; a bank that cannot
be written costs the bank, not the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.clitools import run_command
from support.runs import tiny_config

from collatz_ray.trainer import bank
from collatz_ray.trainer.loop import train

SCAN = ("--range", "3..2**12", "--first", "5")


@pytest.fixture(scope="module")
def run(tmp_path_factory, eval_csv) -> Path:
    """A tiny trained run: two epochs leave V failing at many n."""
    out = tmp_path_factory.mktemp("verify_bank") / "run"
    train(
        tiny_config(eval_csv),
        run_dir=out,
        verbose=False,
    )
    return out


def verify_json(*args) -> dict:
    outcome = run_command("verify", *args, "--json")
    assert outcome.status == 0, outcome.stderr
    return json.loads(outcome.stdout)


def test_the_counterexamples_listed_are_banked_once_with_their_tags(run, tmp_path):
    experiment = tmp_path / "exp"
    experiment.mkdir()
    report = verify_json("--checkpoint", run, *SCAN, "--bank", experiment)
    listed = report["counterexamples"]
    assert len(listed) == 5 and report["bank"] == {
        "file": str(experiment / bank.BANK_FILE),
        "added": 5,
        "already": 0,
        "trial": None,
        "epoch": 2,
    }
    records = bank.read_bank(experiment, strict=True).records
    assert [(str(r.n), r.margin) for r in records] == [(e["n"], e["margin"]) for e in listed]
    assert {(r.source, r.sha256, r.epoch, r.trial) for r in records} == {
        ("verify", report["checkpoint_sha256"], 2, None)
    }
    assert all(r.margin is None or r.margin <= 0 for r in records)

    again = verify_json("--checkpoint", run, *SCAN, "--bank", experiment)
    assert again["bank"]["added"] == 0 and again["bank"]["already"] == 5
    more = run_command(
        "verify",
        "--checkpoint",
        run,
        "--range",
        "3..2**12",
        "--first",
        "8",
        "--bank",
        experiment / bank.BANK_FILE,
    )
    assert more.status == 0 and "banked 3 new counterexamples in" in more.stdout
    assert "(5 there already)" in more.stdout
    assert len(bank.read_bank(experiment, strict=True).records) == 8


def test_a_checkpoint_of_the_experiment_s_own_trial_is_tagged_with_the_trial(run, tmp_path):
    experiment = tmp_path / "exp"
    newest = sorted((run / "checkpoints").iterdir())[-1]
    # Where a search keeps a trial's checkpoints: EXPERIMENT/_train/<trial>/checkpoint_<time>/
    kept = experiment / "_train" / "5a6b7c8d" / "checkpoint_2026-11-29_15-01-49.521915"
    shutil.copytree(newest, kept)
    report = verify_json("--checkpoint", kept, *SCAN, "--bank", experiment)
    assert report["bank"]["trial"] == "5a6b7c8d"
    assert {r.trial for r in bank.read_bank(experiment, strict=True).records} == {"5a6b7c8d"}


def test_bad_bank_targets_are_refused_before_the_scan(run, tmp_path):
    for target in (tmp_path / "missing-dir", tmp_path / "missing-dir" / "bank.jsonl", tmp_path / "bank.txt"):
        outcome = run_command("verify", "--checkpoint", run, *SCAN, "--bank", target)
        outcome.one_error_line(f"--bank {target}: expected an experiment directory, or a .jsonl file")
        assert outcome.stdout == ""


def test_a_bank_that_cannot_be_written_still_gives_the_report(run, tmp_path):
    experiment = tmp_path / "exp"
    (experiment / bank.BANK_FILE).mkdir(parents=True)  # a directory where the file should be
    out = tmp_path / "scan.json"
    outcome = run_command("verify", "--checkpoint", run, *SCAN, "--bank", experiment, "--out", out, "--json")
    line = outcome.one_error_line(f"{experiment / bank.BANK_FILE}: cannot open the counterexample bank")
    assert line.startswith("collatz_ray.verify: error: ")
    report = json.loads(outcome.stdout)
    assert len(report["counterexamples"]) == 5 and "bank" not in report
    assert json.loads(out.read_text())["counterexamples"] == report["counterexamples"]


def test_a_bank_with_a_line_nested_100000_deep_still_gets_the_report_and_the_records(run, tmp_path):
    """Such a line is damage like any other (json.loads would end in a RecursionError
    after the scan, and its report was never shown)."""
    experiment = tmp_path / "exp"
    experiment.mkdir()
    (experiment / bank.BANK_FILE).write_text("[" * 100_000 + "]" * 100_000 + "\n")
    outcome = run_command("verify", "--checkpoint", run, *SCAN, "--bank", experiment)
    assert outcome.status == 0 and "Traceback" not in outcome.stderr, outcome.stderr
    assert "banked 5 new counterexamples" in outcome.stdout and "violations" in outcome.stdout
    assert len(bank.read_bank(experiment, strict=False).records) == 5
