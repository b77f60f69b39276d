"""A search space that trains on a counterexample bank (`hard_seed_bank`): the bank is
read when the space loads, so a missing or damaged one is one line naming the space
file, the key and the bank, before any trial (or Ray) starts; a relative path becomes
absolute, since trials run in directories of their own."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from support.clitools import run_command

from collatz_ray.errors import UsageError
from collatz_ray.search.spaces import load_space
from collatz_ray.trainer import bank

HEAD = """\
budget: {epochs: 40, eval_interval: 20, grace_epochs: 20, reduction_factor: 2, num_samples: 2}
"""


def space(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(HEAD + textwrap.dedent(body))
    return path


@pytest.fixture
def experiment(tmp_path) -> Path:
    """An experiment directory with a bank of two numbers."""
    exp = tmp_path / "results" / "exp1"
    exp.mkdir(parents=True)
    bank.append_records(
        exp / bank.BANK_FILE,
        [
            bank.new_record(1161, margin=-0.2, source="verify"),
            bank.new_record(2**90 + 1, margin=-0.4, source="mining", trial="t", epoch=20),
        ],
    )
    return exp


def refusal(path: Path) -> str:
    with pytest.raises(UsageError) as err:
        load_space(path)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_bank_under_fixed_is_read_and_made_absolute(tmp_path, experiment, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = space(
        tmp_path,
        """\
        fixed: {hard_seed_bank: results/exp1, hard_seed_bank_count: 50}
        parameters:
          lr: {values: [0.001, 0.003]}
        """,
    )
    loaded = load_space(path)
    assert loaded.fixed["hard_seed_bank"] == str(experiment)
    config = loaded.trial_config({"lr": 0.001})
    assert config.hard_seed_bank == str(experiment) and config.hard_seed_bank_count == 50
    assert loaded.smoke().fixed["hard_seed_bank"] == str(experiment)


def test_a_missing_bank_is_one_line_naming_the_file_and_the_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = space(
        tmp_path,
        """\
        fixed: {hard_seed_bank: results/gone}
        parameters:
          lr: {values: [0.001, 0.003]}
        """,
    )
    message = refusal(path)
    assert message == (
        f"{path}: fixed.hard_seed_bank: {tmp_path / 'results' / 'gone'}: no counterexample bank "
        f"here; expected an experiment directory holding {bank.BANK_FILE}, or such a file"
    )


def test_a_damaged_bank_is_one_line_naming_its_line(tmp_path, experiment):
    with open(experiment / bank.BANK_FILE, "a") as f:
        f.write('{"n": "1162", "margin": -0.1, "source": "verify"}\n')
    path = space(
        tmp_path,
        f"""\
        fixed: {{hard_seed_bank: {experiment}}}
        parameters:
          lr: {{values: [0.001, 0.003]}}
        """,
    )
    message = refusal(path)
    assert message.startswith(
        f"{path}: fixed.hard_seed_bank: {experiment / bank.BANK_FILE}: line 3 is not "
        "a counterexample record (n is '1162')"
    )


def test_a_searched_bank_checks_every_choice(tmp_path, experiment):
    good = space(
        tmp_path,
        f"""\
        parameters:
          hard_seed_bank: {{values: [null, {experiment}]}}
          hard_seed_bank_count: {{values: [10, 1000], when: {{hard_seed_bank: {experiment}}}}}
        """,
    )
    loaded = load_space(good)
    assert loaded.parameters[0].choices == (None, str(experiment))
    assert loaded.trial_config({}).hard_seed_bank is None
    bad = space(
        tmp_path,
        f"""\
        parameters:
          hard_seed_bank: {{values: [{experiment}, {tmp_path / "nothing"}]}}
        """,
    )
    assert refusal(bad).startswith(
        f"{bad}: parameters.hard_seed_bank.values[1]: {tmp_path / 'nothing'}: no counterexample bank here"
    )
    too_many = space(
        tmp_path,
        f"""\
        fixed: {{hard_seed_bank: {experiment}, hard_seed_bank_count: 1001}}
        parameters:
          lr: {{values: [0.001, 0.003]}}
        """,
    )
    assert "hard_seed_bank_count must be from 1 to 1000, got 1001" in refusal(too_many)


def test_the_search_command_refuses_it_before_starting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = space(
        tmp_path,
        """\
        fixed: {hard_seed_bank: results/gone}
        parameters:
          lr: {values: [0.001, 0.003]}
        """,
    )
    outcome = run_command("tune", "--space", path, "--storage", tmp_path / "store")
    outcome.one_error_line(f"{path}: fixed.hard_seed_bank: ", "no counterexample bank here")
    assert not (tmp_path / "store").exists()


def test_the_train_command_refuses_a_missing_bank_in_one_line(tmp_path, eval_csv):
    outcome = run_command(
        "train",
        "--smoke",
        "--hard-seed-bank",
        tmp_path / "gone",
        "--eval-csv",
        eval_csv,
        "--out",
        tmp_path / "run",
        "--quiet",
    )
    outcome.one_error_line(f"{tmp_path / 'gone'}: no counterexample bank here")
    assert not (tmp_path / "run" / "checkpoints").exists()
