"""What runs in the Ray Train worker: the plain trainer, with a hook that reports each
evaluation and its checkpoint to Ray Train."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import ray
from ray import train as ray_train

from collatz_ray.search.objective import METRIC, objective
from collatz_ray.trainer.config import TrainConfig


def train_worker(loop_config: dict[str, Any]) -> None:
    """The TorchTrainer's loop: `loop_config` holds the trial's TrainConfig as a dict and
    the worker's thread count. Resumes from Ray Train's checkpoint when there is one."""
    import torch

    from collatz_ray.trainer.loop import train

    torch.set_num_threads(max(1, int(loop_config["threads"])))
    config = TrainConfig.from_dict(loop_config["train"], source="trial config")
    with tempfile.TemporaryDirectory(prefix="collatz-trial-") as tmp:
        resume_from = None
        checkpoint = ray_train.get_checkpoint()
        if checkpoint is not None:
            resume_from = Path(checkpoint.to_directory(os.path.join(tmp, "resume")))

        node_id = ray.get_runtime_context().get_node_id()

        def report(metrics: dict[str, Any], checkpoint_dir: Path) -> None:
            metrics = {**metrics, METRIC: objective(metrics, kind=loop_config["objective"]), "node_id": node_id}
            ray_train.report(metrics, checkpoint=ray_train.Checkpoint.from_directory(str(checkpoint_dir)))

        train(config, run_dir=Path(tmp) / "run", resume_from=resume_from,
              on_evaluation=report, verbose=False)
