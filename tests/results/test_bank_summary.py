"""collatz_ray.results shows an experiment's counterexample bank: how many records and
distinct numbers, which source found how many, the worst few with their margins and
tags, in the table, summary.md and the JSON; a damaged line is a note. Read from a copy
of tests/data/old_layout (no Ray, no search)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.clitools import run_command
from support.width import unwrapped

from collatz_ray.trainer import bank

OLD_LAYOUT = Path(__file__).resolve().parents[1] / "data" / "old_layout" / "old-layout"
SHA = "c0ffee" + "0" * 58
BIG = 3**200  # odd, 317 bits: shortened in the table, whole in the JSON


@pytest.fixture
def experiment(tmp_path) -> Path:
    exp = Path(shutil.copytree(OLD_LAYOUT, tmp_path / "old-layout"))
    bank.append_records(
        exp / bank.BANK_FILE,
        [
            bank.new_record(1161, margin=-0.012, source="mining", trial="3a711499", epoch=20),
            bank.new_record(1161, margin=-0.031, source="verify", sha256=SHA, epoch=40),
            bank.new_record(BIG, margin=None, source="mining", trial="3a711499", epoch=40),
            bank.new_record(2223, margin=-0.002, source="verify", sha256=SHA, epoch=40),
        ],
    )
    return exp


def test_the_table_and_summary_md_show_the_bank(experiment):
    outcome = run_command("results", experiment)
    assert outcome.status == 0, outcome.stderr
    text = outcome.stdout
    section = text[text.index("Counterexample bank\n-------------------") :]
    assert (
        f"{experiment / bank.BANK_FILE}: 4 records of 3 distinct odd n with V(T n) >= V(n) "
        "(distinct numbers found by verify 2, mining 2)"
    ) in unwrapped(section)
    # The table's rows: the lines under its header that start with a number (the sentence
    # above wraps wherever the temporary path ends, and may start a line with a digit too).
    lines = section.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["n", "bits"])
    rows = [line.split() for line in lines[header + 1 :] if line[:1].isdigit()]
    big = str(BIG)
    assert rows == [
        [f"{big[:8]}...({len(big)}", "digits)", "317", "not", "finite", "mining", "3a711499", "40", "-", "1"],
        ["1161", "11", "-0.03100", "verify", "-", "40", SHA[:12], "2"],
        ["2223", "12", "-0.00200", "verify", "-", "40", SHA[:12], "1"],
    ]
    assert f"hard_seed_bank: {experiment}" in unwrapped(section)
    markdown = (experiment / "summary.md").read_text()
    assert (
        "## Counterexample bank" in markdown
        and f"| 1161 | 11 | -0.03100 | verify | - | 40 | {SHA[:12]} | 2 |" in markdown
    )


def test_the_json_holds_the_bank_with_every_digit(experiment):
    outcome = run_command("results", experiment, "--format", "json")
    assert outcome.status == 0, outcome.stderr
    summary = json.loads(outcome.stdout)["experiments"][0]["counterexamples"]
    assert summary["records"] == 4 and summary["distinct"] == 3
    assert summary["by_source"] == {"verify": 2, "mining": 2}
    assert [(e["n"], e["margin"], e["times"], e["sources"]) for e in summary["worst"]] == [
        (str(BIG), None, 1, ["mining"]),
        ("1161", -0.031, 2, ["verify", "mining"]),
        ("2223", -0.002, 1, ["verify"]),
    ]


def test_a_damaged_line_is_a_note_and_the_rest_is_shown(experiment):
    with open(experiment / bank.BANK_FILE, "a") as f:
        f.write("garbage\n")
    bank.append_records(
        experiment / bank.BANK_FILE, [bank.new_record(27, margin=-0.5, source="verify", sha256=SHA)]
    )
    outcome = run_command("results", experiment, "--format", "json")
    assert outcome.status == 0 and "Traceback" not in outcome.stderr
    assert (
        f"{experiment / bank.BANK_FILE}: line 5 is not a counterexample record (not JSON)" in outcome.stderr
    )
    summary = json.loads(outcome.stdout)["experiments"][0]["counterexamples"]
    assert summary["records"] == 5 and summary["worst"][1]["n"] == "27"


def test_an_experiment_without_a_bank_has_no_bank_section(tmp_path):
    exp = Path(shutil.copytree(OLD_LAYOUT, tmp_path / "old-layout"))
    outcome = run_command("results", exp)
    assert outcome.status == 0 and "Counterexample bank" not in outcome.stdout
    data = json.loads(run_command("results", exp, "--format", "json").stdout)
    assert data["experiments"][0]["counterexamples"] is None
