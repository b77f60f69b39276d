"""collatz_ray.results on experiment files nobody should trust: a FIFO or a link to an
endless device where a file should be, a result.json larger than is read, a line of
lists nested 100000 deep, and text fields holding terminal control characters. Each
costs a note (and what it held), never a hang, a traceback or a cleared screen. Read
from a copy of tests/data/old_layout (no Ray, no search)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from support.clitools import run_command

from collatz_ray.results import read
from collatz_ray.trainer import bank

OLD_LAYOUT = Path(__file__).resolve().parents[1] / "data" / "old_layout" / "old-layout"
TRIAL = "collatz_trial_3a711499"


@pytest.fixture
def experiment(tmp_path) -> Path:
    return Path(shutil.copytree(OLD_LAYOUT, tmp_path / "old-layout"))


def summary(experiment: Path) -> tuple[dict, str]:
    outcome = run_command("results", experiment, "--format", "json")
    assert outcome.status == 0 and "Traceback" not in outcome.stderr, outcome.stderr
    return json.loads(outcome.stdout), outcome.stderr


@pytest.mark.parametrize(
    "name",
    [f"{TRIAL}/result.json", f"{TRIAL}/params.json", f"{TRIAL}/train_config.json", "collatz_search.json"],
)
@pytest.mark.parametrize("kind, note", [("fifo", "not a regular file"), ("dev-zero", "outside")])
def test_a_fifo_or_a_device_in_place_of_a_file_is_a_note(experiment, name, kind, note):
    path = experiment / name
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)  # no writer: a plain open would wait for one forever
    else:
        path.symlink_to("/dev/zero")  # endless: a plain read ends in a MemoryError
    data, notes = summary(experiment)
    assert f"{path}: " in notes and note in notes
    assert {t["trial_id"] for t in data["trials"]} >= {"36e1bc16"}  # the rest is summarised


def test_a_line_nested_too_deep_is_skipped_and_the_reports_kept(experiment):
    path = experiment / TRIAL / "result.json"
    before = summary(experiment)[0]
    with open(path, "a") as f:
        f.write("[" * 100_000 + "]" * 100_000 + "\n")
    after, notes = summary(experiment)
    assert f"{path}: skipped line 3: longer than" in notes and "or nested deeper than 64 levels" in notes
    assert after["best"] == before["best"]


def test_of_a_result_json_larger_than_is_read_the_newest_reports_are(experiment, monkeypatch):
    path = experiment / TRIAL / "result.json"
    reports = path.read_text().splitlines()
    monkeypatch.setattr(read, "MAX_RESULT_BYTES", len(reports[-1]) + 10)
    exp = read.load_experiment(experiment)
    trial = next(t for t in exp.trials if t.path is not None and t.path.name == TRIAL)
    assert [r["epoch"] for r in trial.reports] == [json.loads(reports[-1])["epoch"]]
    assert any(n.startswith(f"{path}: larger than") and "its last reports only" in n for n in exp.notes)


def test_control_characters_from_files_reach_the_terminal_escaped(experiment):
    folder = experiment / TRIAL
    params = json.loads((folder / "params.json").read_text())
    (folder / "params.json").write_text(json.dumps({**params, "note": "a\x1b[2Jb\nc"}))
    (folder / "error.txt").write_text("Failure # 1\nValueError: red\x07 \u202eevil\x1b[2J\n")
    record = bank.new_record(27, margin=-0.5, source="verify", trial="\x1b]0;title\x07")
    bank.append_records(experiment / bank.BANK_FILE, [record])
    for fmt in ("table", "md"):
        outcome = run_command("results", experiment, "--format", fmt)
        assert outcome.status == 0, outcome.stderr
        for raw in ("\x1b", "\x07", "\u202e"):
            assert raw not in outcome.stdout
        assert "red\\x07 \\u202eevil" in outcome.stdout and "\\x1b]0;title\\x07" in outcome.stdout
        assert "a\\x1b[2Jb\\x0ac" in outcome.stdout and "\\u202eevil" in outcome.stdout
