"""The metrics ASHA, the summaries and the published log use (docs/method.md).

Trajectory metrics: V along each held-out seed's whole trajectory; a step i -> i+1 is a
violation when V(x_i) - V(x_(i+1)) <= 0. Besides the method's counts the flat dict records
where violations sit, split into growth steps (x_(i+1) > x_i) and decay steps, and the
step indices, because the log left "why do decay steps fail more?" open.

Population metrics on the evaluation CSV: margin = V(n) - V(T n), pass = margin > 0.

A V that is NaN or infinite proves nothing: every step or row where V or the margin is
not finite counts as a violation (NaN compares false with everything, so `margin <= 0`
alone would pass it), `traj_nonfinite` and `n_nonfinite` count them, and a statistic
that comes out non-finite (a mean, a minimum) is None, so every JSON form stays JSON.

The features of the evaluation numbers depend only on the feature spec, so they are
computed once per process and reused by every evaluation of a run (and of a trial).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from collatz_ray.syracuse import limbs
from collatz_ray.syracuse.arith import trajectory
from collatz_ray.syracuse.features import FeatureSpec, features_of_limbs
from collatz_ray.trainer.evalset_csv import EvalSet
from collatz_ray.trainer.model import LyapunovMLP

#: Rows per forward pass: bounds activation memory of the 4.4M-parameter stack.
EVAL_CHUNK = 16384


@dataclass(frozen=True)
class Trajectories:
    seeds: tuple[int, ...]
    values: tuple[tuple[int, ...], ...]
    features: torch.Tensor  # rows of every value of every trajectory, seed after seed


@dataclass(frozen=True)
class Population:
    rows_n: torch.Tensor
    rows_t1: torch.Tensor
    is_growth: np.ndarray
    weight: np.ndarray


@functools.lru_cache(maxsize=16)
def trajectory_features(seeds: tuple[int, ...], spec: FeatureSpec, device: str) -> Trajectories:
    values = tuple(tuple(trajectory(s)) for s in seeds)
    flat = [v for traj in values for v in traj]
    rows = features_of_limbs(limbs.from_ints(flat, device=device), spec).rows[0]
    return Trajectories(seeds, values, rows)


@functools.lru_cache(maxsize=4)
def population_features(evalset: EvalSet, spec: FeatureSpec, device: str) -> Population:
    # Every CSV value is odd and > 1 and its t1 was checked to be T(n) when loaded, so
    # offset 1 of n's k-sequence gives t1's row.
    feats = features_of_limbs(limbs.from_ints(evalset.n, device=device), spec, offsets=(0, 1))
    return Population(
        feats.rows[0],
        feats.rows[1],
        np.asarray(evalset.is_growth, dtype=bool),
        np.asarray(evalset.w_expansion, dtype=np.float64),
    )


@torch.no_grad()
def predict(model: LyapunovMLP, rows: torch.Tensor) -> np.ndarray:
    """V of every row as float64 numpy, in chunks."""
    was_training = model.training
    model.eval()
    out = [model(rows[i : i + EVAL_CHUNK]).double().cpu() for i in range(0, rows.shape[0], EVAL_CHUNK)]
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.empty(0)


@dataclass(frozen=True)
class SeedTrajectory:
    """V along one seed's trajectory x_0 = seed, ..., x_m = 1, step by step."""

    seed: int
    values: tuple[int, ...]
    #: V(x_i), m + 1 of them.
    v: np.ndarray
    #: Per step i -> i+1 (m of them): a violation, V(x_i) - V(x_(i+1)) <= 0 or not finite.
    violation: np.ndarray
    #: Per step: a growth step, x_(i+1) > x_i (k = 1); the others are decay steps.
    growth: np.ndarray

    @property
    def margins(self) -> np.ndarray:
        return self.v[:-1] - self.v[1:]


def seed_trajectories(model: LyapunovMLP, traj: Trajectories) -> list[SeedTrajectory]:
    """V along each trajectory of `traj`, one forward pass for all of them; the metrics
    below and the trajectory pictures of `python -m collatz_ray.results --plot` both
    read it."""
    v_all = predict(model, traj.features)
    out, start = [], 0
    for seed, values in zip(traj.seeds, traj.values):
        v = v_all[start : start + len(values)]
        start += len(values)
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN: a violation
            bad = ~((v[:-1] - v[1:]) > 0)
        grows = np.array([b > a for a, b in zip(values[:-1], values[1:])], dtype=bool)
        out.append(SeedTrajectory(seed, values, v, bad, grows))
    return out


def trajectory_metrics(model: LyapunovMLP, traj: Trajectories) -> dict[str, Any]:
    out: dict[str, Any] = {}
    total_viol = total_steps = growth_viol = decay_viol = growth_steps = nonfinite = 0
    for t in seed_trajectories(model, traj):
        bad, grows, margins = t.violation, t.growth, t.margins
        seed, steps = t.seed, len(t.values) - 1
        out[f"traj_{seed}_violations"] = int(bad.sum())
        out[f"traj_{seed}_length"] = steps
        out[f"traj_{seed}_worst"] = _finite(margins[bad].min()) if bad.any() else None
        out[f"traj_{seed}_violation_steps"] = [int(i) for i in np.nonzero(bad)[0]]
        out[f"traj_{seed}_growth_violations"] = int((bad & grows).sum())
        total_viol += int(bad.sum())
        total_steps += steps
        growth_viol += int((bad & grows).sum())
        decay_viol += int((bad & ~grows).sum())
        growth_steps += int(grows.sum())
        nonfinite += int((~np.isfinite(t.v)).sum())
    out["traj_total_violations"] = total_viol
    out["traj_total_steps"] = total_steps
    out["traj_violation_rate"] = total_viol / total_steps if total_steps else 0.0
    out["traj_growth_violations"] = growth_viol
    out["traj_growth_steps"] = growth_steps
    out["traj_decay_violations"] = decay_viol
    out["traj_decay_steps"] = total_steps - growth_steps
    out["traj_nonfinite"] = nonfinite
    return out


def population_metrics(model: LyapunovMLP, pop: Population) -> dict[str, Any]:
    v_n = predict(model, pop.rows_n)
    v_t1 = predict(model, pop.rows_t1)
    margin = v_n - v_t1
    passed = np.isfinite(margin) & (margin > 0)  # +inf - finite is no proof either
    growth = pop.is_growth
    w = pop.weight

    def pct(mask: np.ndarray, weights: np.ndarray | None = None) -> float:
        if weights is None:
            return 100.0 * float(mask.mean()) if mask.size else 0.0
        total = float(weights.sum())
        return 100.0 * float((weights * mask).sum()) / total if total > 0 else 0.0

    g_margin = margin[growth]
    return {
        "pass_rate": pct(passed),
        "weighted_pass_rate": pct(passed, w),
        "growth_pass_rate": pct(passed[growth]),
        "growth_weighted_pass_rate": pct(passed[growth], w[growth]),
        "growth_margin_mean": _finite(g_margin.mean()) if g_margin.size else None,
        "growth_margin_min": _finite(g_margin.min()) if g_margin.size else None,
        "margin_mean": _finite(margin.mean()),
        "margin_median": _finite(np.median(margin)),
        "margin_min": _finite(margin.min()),
        "margin_5pct": _finite(np.percentile(margin, 5)),
        "eval_violations": int((~passed).sum()),
        "n_total": int(margin.size),
        "n_growth": int(growth.sum()),
        "n_nonfinite": int((~np.isfinite(margin)).sum()),
    }


def _finite(value: float) -> float | None:
    """A statistic, or None where it is NaN or infinite (V was not finite somewhere)."""
    value = float(value)
    return value if math.isfinite(value) else None


def evaluate(
    model: LyapunovMLP,
    spec: FeatureSpec,
    *,
    test_seeds: Sequence[int],
    evalset: EvalSet,
    device: torch.device,
) -> dict[str, Any]:
    """All the method's metrics as one flat dict."""
    # inf - inf is NaN, counted above: numpy need not warn about it.
    with np.errstate(invalid="ignore", over="ignore"):
        return {
            **trajectory_metrics(model, trajectory_features(tuple(test_seeds), spec, str(device))),
            **population_metrics(model, population_features(evalset, spec, str(device))),
        }


def clear_feature_caches() -> None:
    """Forget the cached features (a benchmark times their first computation)."""
    trajectory_features.cache_clear()
    population_features.cache_clear()
