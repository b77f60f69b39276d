"""The objective Tune minimises and the ranking rule every report uses, on hand-made
metrics whose expected order is written out, not computed by the code under test."""

from __future__ import annotations

import math

import pytest

from collatz_ray.search.objective import objective, rank_key, ranked


def test_fewer_violations_always_win_whatever_the_margins():
    assert objective({"traj_total_violations": 3, "margin_5pct": -1e9}) < objective(
        {"traj_total_violations": 4, "margin_5pct": 1e9}
    )


@pytest.mark.parametrize("tail, expected", [(0.0, 3.5), (1.0, 3.25), (-1.0, 3.75)])
def test_the_tie_break_is_a_fraction_that_falls_as_the_tail_margin_rises(tail, expected):
    assert objective({"traj_total_violations": 3, "margin_5pct": tail}) == pytest.approx(expected)


@pytest.mark.parametrize("tail", [None, math.nan, math.inf, -math.inf])
def test_a_missing_or_non_finite_tail_counts_as_zero(tail):
    assert objective({"traj_total_violations": 2, "margin_5pct": tail}) == pytest.approx(2.5)


def test_the_tie_break_stays_strictly_inside_zero_and_one():
    for tail in (-1e300, -5.0, 0.0, 5.0, 1e300):
        fraction = objective({"traj_total_violations": 0, "margin_5pct": tail})
        assert 0.0 <= fraction <= 1.0


def _trial(trial_id, epoch=None, score=None):
    metrics = {} if score is None else {"epoch": epoch, "objective": score}
    return {"trial_id": trial_id, "metrics": metrics}


def test_full_budget_trials_rank_before_stopped_ones_and_silent_ones_last():
    trials = [
        _trial("stopped_best_score", epoch=40, score=1.1),
        _trial("silent"),
        _trial("full_worse", epoch=80, score=9.4),
        _trial("full_better", epoch=80, score=7.2),
        _trial("stopped_worse", epoch=40, score=5.0),
    ]
    order = [t["trial_id"] for t in ranked(trials, max_epochs=80)]
    assert order == ["full_better", "full_worse", "stopped_best_score", "stopped_worse", "silent"]


def test_rank_key_of_a_trial_past_the_budget_counts_as_full():
    assert rank_key({"epoch": 120, "objective": 2.0}, max_epochs=100) == (0, 2.0)
    assert rank_key({}, max_epochs=100)[0] == 2
