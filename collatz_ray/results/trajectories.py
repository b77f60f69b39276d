"""V along the best trial's held-out trajectories, step by step, for `--plot`.

The one place `collatz_ray.results` reads a model. The best trial's newest reported
checkpoint is loaded the way `collatz_ray.evaluate` loads one (trainer.loading:
weights_only, checked against checksum.json), on the CPU, and V is computed along the
log's held-out trajectories and the large-number ones by the trainer's own evaluation
code (trainer.heldout.heldout_trajectories), so the pictures count what the metrics
count. torch is imported here only when the view is asked for: reading results stays
light. Whatever keeps the view from being drawn (torch not installed, no checkpoint on
disk, a corrupt one) is a UsageError of one line; the command says it and draws the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collatz_ray.errors import UsageError
from collatz_ray.results.export import newest_checkpoint
from collatz_ray.results.read import Experiment, Trial
from collatz_ray.results.report import best_trial

if TYPE_CHECKING:
    from collatz_ray.trainer.config import TrainConfig
    from collatz_ray.trainer.evaluation import SeedTrajectory

#: The held-out sets drawn, by trainer.heldout's names: (title, the metrics' key prefix).
SETS = {
    "log": ("the log's held-out trajectories", "traj_total"),
    "big": ("the large-number trajectories", "traj_big"),
}


@dataclass(frozen=True)
class BestTrajectories:
    trial: Trial
    epoch: int
    checkpoint: Path
    config: TrainConfig
    #: The trial's report of that epoch: the counts the pictures must agree with.
    reported: dict[str, Any]
    #: Per set of SETS, V along each of its trajectories.
    sets: dict[str, list[SeedTrajectory]]

    def violations(self, name: str) -> tuple[int, int]:
        """(violations, steps) of a set, as computed here."""
        trajectories = self.sets[name]
        return (
            sum(int(t.violation.sum()) for t in trajectories),
            sum(len(t.values) - 1 for t in trajectories),
        )


def best_trajectories(exp: Experiment) -> BestTrajectories:
    """V along the held-out trajectories of `exp`'s best trial, at its newest reported
    checkpoint that is on disk."""
    best = best_trial(exp)
    if best is None:
        raise UsageError("no trial has reported a result yet")
    checkpoint, epoch = newest_checkpoint(exp, best)
    try:
        import torch

        from collatz_ray.trainer.heldout import heldout_trajectories
        from collatz_ray.trainer.loading import load_model
    except ImportError as err:  # a laptop with pandas and matplotlib but no torch
        raise UsageError(f"computing V needs torch ({err})") from None
    loaded = load_model(checkpoint, overrides={}, flag=f"trial {best.trial_id}:")
    sets = heldout_trajectories(loaded.model, loaded.config, device=torch.device("cpu"))
    reported = next(r for r in best.reports if r["epoch"] == epoch)
    return BestTrajectories(best, epoch, checkpoint, loaded.config, reported, sets)
