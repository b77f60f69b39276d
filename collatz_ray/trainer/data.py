"""Training batches (docs/method.md): hard rows, random rows, curriculum, mined numbers,
banked numbers.

Every epoch's draw comes from its own generator, seeded by (seed, epoch, stream), so a
batch depends only on the config, the epoch, the banked numbers (fixed for a run) and
the mined pool at that epoch. That is what makes a resumed run repeat exactly, and it
lets the trainer draw many epochs at once and compute their features in one vectorised
call (`draw_epochs`): feature cost is dominated by per-call overhead at batch 1024, so
batching epochs is where speed comes from. A chunk never crosses a mining epoch, the
only event that changes the pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from collatz_ray.syracuse import limbs
from collatz_ray.syracuse.arith import HARD_SEEDS, syracuse, trajectory
from collatz_ray.syracuse.features import FeatureSpec, features_of_limbs
from collatz_ray.trainer.config import TrainConfig

HARD_WEIGHT_GROWTH, HARD_WEIGHT_DECAY = 20.0, 2.0
RANDOM_WEIGHT_GROWTH, RANDOM_WEIGHT_DECAY = 10.0, 1.0
MINED_DIRECT_PROBABILITY = 0.3
WALK_STEPS = 300
MINED_KEEP = 1000
MINING_HARD_RATIO = 0.5

STREAM_TRAIN, STREAM_MINE = 0, 1


@dataclass
class Batch:
    """Rows for the loss: features of T^j(n) per offset j, and what the loss needs of n."""

    rows: dict[int, torch.Tensor]
    ln_n: torch.Tensor
    drift: torch.Tensor
    weight: torch.Tensor
    is_hard: torch.Tensor
    values: torch.Tensor  # limbs of n, to recover mined numbers exactly

    def __len__(self) -> int:
        return self.ln_n.shape[0]

    def slice(self, start: int, stop: int) -> Batch:
        return Batch(
            rows={j: r[start:stop] for j, r in self.rows.items()},
            ln_n=self.ln_n[start:stop],
            drift=self.drift[start:stop],
            weight=self.weight[start:stop],
            is_hard=self.is_hard[start:stop],
            values=self.values[start:stop],
        )


def training_seeds(config: TrainConfig) -> list[int]:
    """Hard seeds minus the test seeds (a test trajectory is never trained on)."""
    held_out = set(config.test_seeds)
    seeds = [s for s in HARD_SEEDS if s not in held_out]
    return seeds[: config.num_hard_seeds] if config.num_hard_seeds is not None else seeds


def odd_walk(start: int) -> list[int]:
    """The odd values > 1 among the first WALK_STEPS steps of start's trajectory."""
    found, n = [], start
    for _ in range(WALK_STEPS + 1):
        if n > 1 and n & 1:
            found.append(n)
        if n <= 1:
            break
        n = syracuse(n)
    return found


def held_out_values(config: TrainConfig) -> set[int]:
    """Every value on the held-out trajectories (the test seeds' own)."""
    return {v for seed in config.test_seeds for v in trajectory(seed)}


class BatchSampler:
    """Draws the rows of an epoch. Its state is the mined pool and the banked numbers
    (both saved in checkpoints)."""

    def __init__(self, config: TrainConfig, *, device: torch.device) -> None:
        self.config = config
        self.device = device
        self.spec = FeatureSpec(config.lookahead, k_only=config.k_only, k_shifted=config.k_shifted)
        self.offsets = tuple(
            j for j, on in ((1, config.use_t1), (4, config.use_t4), (8, config.use_t8)) if on
        )
        self.seeds = training_seeds(config)
        if not self.seeds:
            raise ValueError("no training seeds left after removing the test seeds")
        self.mined: list[int] = []
        self.banked: list[int] = []
        self._walks: dict[int, list[int]] = {}
        self._random_width = -(-(config.max_bits - 3) // limbs.LIMB_BITS)

    # -- state ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        # Hex strings: pickle writes an integer past 2040 bits in a form that
        # torch.load(weights_only=True) refuses (and str() stops at 4300 digits).
        return {
            "mined": [format(v, "x") for v in self.mined],
            "banked": [format(v, "x") for v in self.banked],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Through add_mined, so a pool saved before it held distinct numbers loads as the
        # method's pool; checkpoints from before the hex form hold the integers themselves.
        self.mined = []
        self.add_mined([int(v, 16) if isinstance(v, str) else int(v) for v in state["mined"]])
        # Checkpoints from before the bank have none.
        self.banked = [int(v, 16) for v in state.get("banked", [])]

    def use_bank(self, ranked: Sequence[int]) -> None:
        """Take the first hard_seed_bank_count of a bank's numbers (ranked worst first) as
        extra hard seeds, leaving out the training seeds (already in the pool) and every
        value of a held-out trajectory (a test trajectory is never trained on directly).
        Read once, when a run starts: a resumed run keeps the numbers it started with."""
        skip = set(self.seeds) | held_out_values(self.config)
        self.banked = [v for v in dict.fromkeys(ranked) if v not in skip][: self.config.hard_seed_bank_count]

    def add_mined(self, values: Sequence[int]) -> None:
        """Append newly mined numbers; the pool keeps the newest MINED_KEEP distinct ones.

        A number already in the pool is not added twice (duplicates would multiply its
        share of the hard rows): it moves to the newest end, since mining just found it
        weak again, and is dropped only when MINED_KEEP newer numbers follow it."""
        pool = dict.fromkeys(self.mined)
        for v in values:
            pool.pop(int(v), None)
            pool[int(v)] = None
        self.mined = list(pool)[-MINED_KEEP:]
        keep = set(self.mined) | set(self.seeds) | set(self.banked)
        self._walks = {k: v for k, v in self._walks.items() if k in keep}

    # -- drawing --------------------------------------------------------------------
    def active_seeds(self, epoch: int) -> list[int]:
        c = self.config
        if not c.curriculum:
            return self.seeds
        total = len(self.seeds)
        start = min(c.start_seeds, total)
        count = int(start + (total - start) * min(1.0, epoch / c.ramp_len))
        return self.seeds[:count]

    def draw_epochs(self, epochs: Sequence[int]) -> list[Batch]:
        """The training batches of several epochs, featurised in one call."""
        c = self.config
        parts = [self._draw_values(e, c.batch_size, c.hard_ratio, STREAM_TRAIN) for e in epochs]
        merged = self._featurise(parts)
        size = c.batch_size
        return [merged.slice(i * size, (i + 1) * size) for i in range(len(epochs))]

    def draw_mining_pool(self, epoch: int) -> Batch:
        return self._featurise(
            [self._draw_values(epoch, self.config.mine_pool, MINING_HARD_RATIO, STREAM_MINE)]
        )

    def _walk(self, start: int) -> list[int]:
        if start not in self._walks:
            self._walks[start] = odd_walk(start)
        return self._walks[start]

    def _draw_values(self, epoch: int, size: int, hard_ratio: float, stream: int) -> tuple[torch.Tensor, int]:
        """(limbs of the epoch's numbers, hard first; number of hard rows)."""
        rng = np.random.default_rng([self.config.seed, epoch, stream])
        hard_count = int(size * hard_ratio)
        hard = self._hard_values(rng, hard_count, epoch)
        random_limbs = self._random_limbs(rng, size - hard_count)
        width = max(self._random_width, -(-max((v.bit_length() for v in hard), default=1) // 32))
        hard_limbs = (
            limbs.from_ints(hard, width=width) if hard else torch.empty((0, width), dtype=torch.int64)
        )
        return torch.cat([hard_limbs, limbs.pad(random_limbs, width)]), hard_count

    def _hard_values(self, rng: np.random.Generator, count: int, epoch: int) -> list[int]:
        seeds = self.active_seeds(epoch)
        # Banked numbers are drawn like mined ones: active from the start, taken directly
        # or walked.
        pool = seeds + self.banked + self.mined
        if not pool:
            # The original fell back to 27, a test seed; the first training seed keeps
            # the held-out trajectories unseen.
            pool = self.seeds[:1]
        picks = rng.integers(0, len(pool), size=count)
        direct = rng.random(count) < MINED_DIRECT_PROBABILITY
        walk_u = rng.random(count)
        values = []
        for pick, use_direct, u in zip(picks.tolist(), direct.tolist(), walk_u.tolist()):
            start = pool[pick]
            if pick >= len(seeds) and use_direct:
                values.append(start | 1)
                continue
            walk = self._walk(start) or self._walk(self.seeds[0])
            values.append(walk[int(u * len(walk))])
        return values

    def _random_limbs(self, rng: np.random.Generator, count: int) -> torch.Tensor:
        """Bit length b uniform in [2, max_bits-4], n uniform in [2^b, 2^(b+1)-1], made
        odd by +1 (setting bit 0 of an even n is exactly +1), built directly as limbs."""
        b = rng.integers(2, self.config.max_bits - 4, size=count, endpoint=True)
        return limbs.random_odd(rng, b, width=self._random_width)

    def _featurise(self, parts: list[tuple[torch.Tensor, int]]) -> Batch:
        width = max(p.shape[1] for p, _ in parts)
        values = torch.cat([limbs.pad(p, width) for p, _ in parts]).to(self.device)
        is_hard = torch.cat([torch.arange(p.shape[0]) < h for p, h in parts]).to(self.device)
        feats = features_of_limbs(values, self.spec, offsets=(0,) + self.offsets)
        grows = feats.first_k == 1  # T(n) > n for odd n > 1
        weight = torch.where(
            is_hard,
            torch.where(grows, HARD_WEIGHT_GROWTH, HARD_WEIGHT_DECAY),
            torch.where(grows, RANDOM_WEIGHT_GROWTH, RANDOM_WEIGHT_DECAY),
        ).to(torch.float32)
        return Batch(
            rows=feats.rows,
            ln_n=feats.ln_n.to(torch.float32),
            drift=feats.drift.to(torch.float32),
            weight=weight,
            is_hard=is_hard,
            values=values,
        )
