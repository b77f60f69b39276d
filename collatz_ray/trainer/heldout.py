"""Held-out metrics that the log's 429 steps cannot give (docs/method.md §8), reported
beside them, which stay as they are for comparability.

**Unseen steps.** Trajectories merge: 271 of the 429 held-out steps start at a value on
some training seed's walk, so they are pairs the hard rows train on. The unseen steps
are those whose start lies on no walk of any training seed of the run: the config's
hard seeds minus its test seeds, cut to `num_hard_seeds`, each walked the way the
sampler walks it (data.odd_walk). All of them, whatever the curriculum: it only delays
seeds, and a run resumed with more epochs reaches them all, so a step counted as unseen
is one no seed of the run can ever train on. Random rows and mined numbers are not
counted (they are random; see §8). The counts come from the trajectory metrics' own
violation steps, so no extra forward pass is made.

**Large numbers.** Training draws at most max_bits - 3 = 125 bits; the trajectories of
fixed random seeds of 256, 512 and 1024 bits measure extrapolation far beyond that. The
seeds come from `random.Random(429)` and are pinned by the sha256 of their decimal text,
as the evaluation CSV is; their features are computed once per feature spec and device
(evaluation.trajectory_features caches them), so an evaluation pays only the forward
pass of about 17500 rows.
"""

from __future__ import annotations

import functools
import hashlib
import random
from typing import Any

import torch

from collatz_ray.syracuse.arith import trajectory
from collatz_ray.syracuse.features import FeatureSpec
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.data import odd_walk, training_seeds
from collatz_ray.trainer.evaluation import (
    SeedTrajectory,
    seed_trajectories,
    trajectory_features,
    trajectory_metrics,
)
from collatz_ray.trainer.model import LyapunovMLP

BIG_BITS = (256, 512, 1024)
BIG_SEEDS_PER_BITS = 4
BIG_RANDOM_SEED = 429
#: sha256 of the big seeds' decimal text, one per line (see big_seeds_text).
BIG_SEEDS_SHA256 = "49985e13d4c2d0214f0303f6127b7b74263753da81c4fa4e42d93b0e943a175e"


def big_seeds_text() -> str:
    """The seeds' definition: for each bit length in BIG_BITS, BIG_SEEDS_PER_BITS draws of
    getrandbits(bits) from one random.Random(429), top bit and bit 0 set (so each has
    exactly that many bits and is odd); decimal, one per line."""
    rng = random.Random(BIG_RANDOM_SEED)
    seeds = [
        rng.getrandbits(bits) | 1 << (bits - 1) | 1 for bits in BIG_BITS for _ in range(BIG_SEEDS_PER_BITS)
    ]
    return "".join(f"{s}\n" for s in seeds)


@functools.lru_cache(maxsize=1)
def big_seeds() -> tuple[int, ...]:
    text = big_seeds_text()
    digest = hashlib.sha256(text.encode()).hexdigest()
    if digest != BIG_SEEDS_SHA256:
        raise RuntimeError(
            f"the large-number seeds changed (sha256 {digest}, pinned "
            f"{BIG_SEEDS_SHA256}): their metrics would not compare"
        )
    return tuple(int(line) for line in text.splitlines())


@functools.lru_cache(maxsize=16)
def unseen_steps(test_seeds: tuple[int, ...], train_seeds: tuple[int, ...]) -> dict[int, frozenset[int]]:
    """Per test seed, the indices i of the steps x_i -> x_(i+1) whose start x_i lies on
    no training seed's walk."""
    seen = set().union(*(odd_walk(s) for s in train_seeds))
    return {s: frozenset(i for i, x in enumerate(trajectory(s)[:-1]) if x not in seen) for s in test_seeds}


def unseen_metrics(metrics: dict[str, Any], config: TrainConfig) -> dict[str, int]:
    """traj_unseen_violations / traj_unseen_steps from the trajectory metrics' violation
    steps."""
    unseen = unseen_steps(tuple(config.test_seeds), tuple(training_seeds(config)))
    violations = sum(
        len(unseen[s].intersection(metrics[f"traj_{s}_violation_steps"])) for s in config.test_seeds
    )
    return {
        "traj_unseen_violations": violations,
        "traj_unseen_steps": sum(len(steps) for steps in unseen.values()),
    }


def big_metrics(model: LyapunovMLP, spec: FeatureSpec, *, device: torch.device) -> dict[str, int]:
    """Violations and steps along the large seeds' trajectories, per bit length and in all."""
    seeds = big_seeds()
    per_seed = trajectory_metrics(model, trajectory_features(seeds, spec, str(device)))
    out: dict[str, int] = {}
    for bits in BIG_BITS:
        group = [s for s in seeds if s.bit_length() == bits]
        out[f"traj_big_{bits}_violations"] = sum(per_seed[f"traj_{s}_violations"] for s in group)
        out[f"traj_big_{bits}_steps"] = sum(per_seed[f"traj_{s}_length"] for s in group)
    out["traj_big_violations"] = sum(out[f"traj_big_{b}_violations"] for b in BIG_BITS)
    out["traj_big_steps"] = sum(out[f"traj_big_{b}_steps"] for b in BIG_BITS)
    return out


def heldout_metrics(
    model: LyapunovMLP, config: TrainConfig, metrics: dict[str, Any], *, device: torch.device
) -> dict[str, int]:
    """The unseen-step and large-number metrics of a model trained (or read) with `config`,
    given the method's metrics of the same evaluation (`evaluation.evaluate`)."""
    spec = FeatureSpec(config.lookahead, k_only=config.k_only, k_shifted=config.k_shifted)
    return {**unseen_metrics(metrics, config), **big_metrics(model, spec, device=device)}


def heldout_trajectories(
    model: LyapunovMLP, config: TrainConfig, *, device: torch.device
) -> dict[str, list[SeedTrajectory]]:
    """V step by step along the log's held-out trajectories ("log": the config's test
    seeds) and the large seeds' ("big"), the sets whose violations the metrics count."""
    spec = FeatureSpec(config.lookahead, k_only=config.k_only, k_shifted=config.k_shifted)
    return {
        name: seed_trajectories(model, trajectory_features(tuple(seeds), spec, str(device)))
        for name, seeds in (("log", config.test_seeds), ("big", big_seeds()))
    }
