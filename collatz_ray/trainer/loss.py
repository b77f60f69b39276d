"""The training objective (docs/method.md).

rank(a, b) = max(0, margin - (a - b)) asks V to drop by at least `margin` along a step.
    loss = mean(w * rank(V(n), V(T n)))           T1, on by default
         + 0.5 * mean(rank(V(n), V(T^4 n)))       T4, optional
         + 0.2 * mean(rank(V(n), V(T^8 n)))       T8, optional
         + a(e) * mean((V(n) - target)^2)
The anchor keeps V near ln(n) + beta * drift early on and decays away after
`decay_start`, so the ranking terms shape V late in training.
"""

from __future__ import annotations

import torch

from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.data import Batch
from collatz_ray.trainer.model import LyapunovMLP

T4_WEIGHT = 0.5
T8_WEIGHT = 0.2
ANCHOR_DECAY_BASE = 0.001


def anchor_weight(epoch: int, config: TrainConfig) -> float:
    """1 before decay_start, then min_anchor + (1 - min_anchor) * 0.001^p."""
    if epoch < config.decay_start:
        return 1.0
    p = min(1.0, (epoch - config.decay_start) / config.decay_len)
    return config.min_anchor + (1.0 - config.min_anchor) * ANCHOR_DECAY_BASE**p


def rank(a: torch.Tensor, b: torch.Tensor, margin: float) -> torch.Tensor:
    return torch.relu(margin - (a - b))


def anchor_target(batch: Batch, model: LyapunovMLP, config: TrainConfig) -> torch.Tensor:
    """fixed: ln n + beta_init * drift; adaptive: learned beta; split: adaptive on the
    hard rows, fixed on the random rows."""
    fixed = batch.ln_n + config.beta_init * batch.drift
    if config.target_type == "fixed":
        return fixed
    adaptive = batch.ln_n + model.drift_param * batch.drift
    if config.target_type == "adaptive":
        return adaptive
    return torch.where(batch.is_hard, adaptive, fixed)


def values_at_offsets(model: LyapunovMLP, batch: Batch) -> dict[int, torch.Tensor]:
    """V of every row set in one forward pass (one large matmul beats four small ones)."""
    offsets = sorted(batch.rows)
    v = model(torch.cat([batch.rows[j] for j in offsets]))
    return dict(zip(offsets, v.split(len(batch))))


def lyapunov_loss(model: LyapunovMLP, batch: Batch, epoch: int, config: TrainConfig) -> torch.Tensor:
    v = values_at_offsets(model, batch)
    v0 = v[0]
    loss = anchor_weight(epoch, config) * torch.mean((v0 - anchor_target(batch, model, config)) ** 2)
    if config.use_t1:
        loss = loss + torch.mean(batch.weight * rank(v0, v[1], config.margin))
    if config.use_t4:
        loss = loss + T4_WEIGHT * torch.mean(rank(v0, v[4], config.margin))
    if config.use_t8:
        loss = loss + T8_WEIGHT * torch.mean(rank(v0, v[8], config.margin))
    return loss
