"""`--split-loss` means what it meant in the published code: with `--target-type adaptive`
the split target (docs/method.md §5); with a fixed target nothing changes."""

from __future__ import annotations

import pytest
from support.clitools import run_command

from collatz_ray.train import parser, resolve_config
from collatz_ray.trainer.config import TrainConfig


def resolved(*argv: str) -> TrainConfig:
    return resolve_config(parser().parse_args(list(argv)))


def test_the_published_flags_give_the_split_target():
    assert resolved("--target-type", "adaptive", "--split-loss").target_type == "split"
    assert resolved("--split-loss", "--target-type", "adaptive").target_type == "split"


def test_split_loss_alone_leaves_the_target_fixed_and_says_so(capsys):
    assert resolved("--split-loss").target_type == "fixed"
    assert "leaves the target fixed" in capsys.readouterr().err
    assert resolved("--split-loss", "--quiet").target_type == "fixed"
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("target", ["fixed", "adaptive", "split"])
def test_without_split_loss_the_target_is_as_given(target):
    assert resolved("--target-type", target).target_type == target


def test_split_loss_applies_to_an_adaptive_target_from_a_config_file(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("target_type: adaptive\n")
    assert resolved("--config", str(cfg), "--split-loss").target_type == "split"
    assert resolved("--target-type", "split", "--split-loss").target_type == "split"


def test_a_run_records_the_split_target(tmp_path, eval_csv):
    out = tmp_path / "run"
    outcome = run_command(
        "train",
        "--smoke",
        "--epochs",
        "2",
        "--eval-interval",
        "2",
        "--target-type",
        "adaptive",
        "--split-loss",
        "--eval-csv",
        eval_csv,
        "--out",
        out,
        "--quiet",
    )
    assert outcome.status == 0, outcome.stderr
    assert TrainConfig.from_yaml(out / "config.yaml").target_type == "split"
