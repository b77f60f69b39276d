"""The Tune trial: a function trainable that builds one TorchTrainer for the sampled
config and fit()s it.

A TorchTrainer can no longer be handed to tune.Tuner (Train V2), so the Tune trial builds
it and passes TuneReportCallback, which forwards the worker's metrics to Tune. The inner
Train run is named after the Tune trial id: a trial restarted after a crash finds its own
checkpoints there and continues instead of starting over.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from pathlib import Path
from typing import Any

import ray
from ray import train as ray_train
from ray import tune
from ray.train.backend import Backend
from ray.train.torch import TorchConfig, TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from collatz_ray.search.failures import failure_reason
from collatz_ray.search.objective import TIME_ATTR
from collatz_ray.search.ray.worker import train_worker
from collatz_ray.search.resources import (DRIVER_RESOURCE, DRIVER_RESOURCE_SHARE, TRIAL_ACTOR_CPU,
                                          worker_resources)
from collatz_ray.search.settings import TRAIN_DIR, TRIAL_CONFIG_FILE, SearchSettings, join


class TrialFailed(RuntimeError):
    """A trial's training failed (diverged, crashed past its retries, never started)."""


def collatz_trial(params: dict[str, Any], settings: SearchSettings) -> None:
    """A Tune function trainable: one TorchTrainer run of the sampled config."""
    # Read by the Train controller this fit() starts (it runs in this process's env):
    # workers that cannot be placed in time fail the trial instead of waiting forever.
    os.environ["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] = str(settings.start_timeout_s)
    context = tune.get_context()
    trial_id = context.get_trial_id()
    gpus = settings.gpus_per_trial
    config = settings.space.trial_config(params)
    config = config.replace(device="cuda" if gpus > 0 else "cpu",
                            **({"eval_csv": settings.eval_csv} if settings.eval_csv else {}))
    trial_dir = context.get_trial_dir()
    if trial_dir:
        Path(trial_dir).mkdir(parents=True, exist_ok=True)
        (Path(trial_dir) / TRIAL_CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=1))
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"train": config.to_dict(),
                           "threads": max(1, round(settings.cpus_per_trial)),
                           "recorded_through": recorded_through(context.get_storage()),
                           # Tells a first worker of this start from one Train restarted.
                           "trial_start": uuid.uuid4().hex,
                           "objective": settings.space.objective,
                           "trial_id": trial_id, "bank": settings.bank},
        scaling_config=ray_train.ScalingConfig(
            num_workers=1, use_gpu=gpus > 0,
            resources_per_worker=worker_resources(cpus_per_trial=settings.cpus_per_trial,
                                                  gpus_per_trial=gpus)),
        torch_config=SingleWorkerTorchConfig(),
        run_config=ray_train.RunConfig(
            name=trial_id,
            storage_path=join(settings.storage, settings.experiment, TRAIN_DIR),
            callbacks=[TuneReportCallback()],
            checkpoint_config=ray_train.CheckpointConfig(num_to_keep=2),
            # A killed worker restarts from its last checkpoint; a trial whose workers
            # cannot start (no resources) fails instead of retrying forever.
            failure_config=ray_train.FailureConfig(max_failures=2, controller_failure_limit=1),
            logging_config=ray_train.LoggingConfig(log_level="WARNING"),
        ),
    )
    try:
        trainer.fit()
    except ray_train.TrainingFailedError as err:
        # Ray's message is a page of nested tracebacks; error.txt and the summaries
        # should say in one line why the trial failed.
        raise TrialFailed(failure_reason(str(err), fallback=type(err).__name__)) from None


def recorded_through(storage) -> int:
    """The last epoch this trial's record in the experiment (result.json in storage)
    holds: 0 for a new trial, else what a restarted trial need not report again."""
    try:
        with storage.storage_filesystem.open_input_stream(f"{storage.trial_fs_path}/result.json") as stream:
            data = stream.read()
    except OSError:  # FileNotFoundError: a new trial
        return 0
    last = 0
    for line in data.splitlines():
        try:
            epoch = json.loads(line).get(TIME_ATTR)
        except (ValueError, AttributeError):
            continue  # a torn last line, or not a report
        if isinstance(epoch, int) and not isinstance(epoch, bool):
            last = max(last, epoch)
    return last


def trainable(settings: SearchSettings):
    """The Tune trainable with its settings and resources attached. It keeps the name
    `collatz_trial`, which Tuner.restore needs to find it again."""
    resources: dict[str, float] = {"CPU": TRIAL_ACTOR_CPU}
    if ray.is_initialized() and ray.cluster_resources().get(DRIVER_RESOURCE, 0) > 0:
        resources[DRIVER_RESOURCE] = DRIVER_RESOURCE_SHARE
    # A trial needs no study database (and its URL may carry a password): leave it out of
    # what Tune pickles and ships to the trials.
    trial_settings = dataclasses.replace(settings, study=None)
    return tune.with_resources(tune.with_parameters(collatz_trial, settings=trial_settings), resources)


class _NoProcessGroup(Backend):
    """Ray Train's torch backend without torch.distributed: nothing to set up."""


@dataclasses.dataclass
class SingleWorkerTorchConfig(TorchConfig):
    """A trial has one worker and the trainer never calls torch.distributed, so no
    process group is made. Torch's default one would start a c10d TCPStore that listens
    on all interfaces, without authentication, for the whole trial (it takes no bind
    address); skipping it keeps every socket of the embedded Ray on loopback and saves
    the group's setup time. The default-CUDA-device context of TorchConfig is kept."""

    @property
    def backend_cls(self):
        return _NoProcessGroup
