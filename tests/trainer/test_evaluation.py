"""Metrics never pass a model whose V is NaN or infinite, and never hold a bare NaN."""

from __future__ import annotations

import json

import pytest
import torch
from support.hostile import broken_model

from collatz_ray.syracuse.arith import DEFAULT_TEST_SEEDS
from collatz_ray.syracuse.features import FeatureSpec
from collatz_ray.trainer.evalset_csv import load_evalset
from collatz_ray.trainer.evaluation import evaluate
from collatz_ray.trainer.model import LyapunovMLP
from collatz_ray.trainer.text import format_report, strict_json

MARGIN_KEYS = (
    "margin_mean",
    "margin_median",
    "margin_min",
    "margin_5pct",
    "growth_margin_mean",
    "growth_margin_min",
)


@pytest.mark.parametrize("kind", ["nan", "inf"])
def test_a_model_whose_v_is_not_finite_fails_everything(eval_csv, kind):
    evalset = load_evalset(eval_csv)
    m = evaluate(
        broken_model(kind),
        FeatureSpec(10),
        test_seeds=DEFAULT_TEST_SEEDS,
        evalset=evalset,
        device=torch.device("cpu"),
    )
    assert m["traj_total_violations"] == m["traj_total_steps"] == 429
    assert m["traj_nonfinite"] == 429 + len(DEFAULT_TEST_SEEDS) and m["n_nonfinite"] == len(evalset)
    assert m["pass_rate"] == m["weighted_pass_rate"] == m["growth_pass_rate"] == 0.0
    assert all(m[key] is None for key in MARGIN_KEYS)
    assert all(m[f"traj_{s}_worst"] is None for s in DEFAULT_TEST_SEEDS)
    text = strict_json(m)
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name}")) == m
    report = format_report(m, DEFAULT_TEST_SEEDS)
    assert "margin mean n/a" in report and "V is nan or inf at 434 held-out trajectory values" in report


def test_a_finite_model_reports_no_nonfinite_values(eval_csv):
    torch.manual_seed(1)
    m = evaluate(
        LyapunovMLP(FeatureSpec(10).dim, (8,)),
        FeatureSpec(10),
        test_seeds=(27,),
        evalset=load_evalset(eval_csv),
        device=torch.device("cpu"),
    )
    assert m["traj_nonfinite"] == m["n_nonfinite"] == 0
    assert all(isinstance(m[key], float) for key in MARGIN_KEYS)


def test_strict_json_writes_null_for_nan_and_infinities():
    assert (
        strict_json({"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": (2,)})
        == '{"a": null, "b": [null, null, 1.5], "c": [2]}'
    )
