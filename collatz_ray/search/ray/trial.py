"""The Tune trial: a function trainable that runs the trainer for the sampled config
through a Ray Train TorchTrainer in Train's local mode.

With one worker per trial, local mode (`ScalingConfig(num_workers=0)`) runs the train
function in the Tune trial's own process, which holds the trial's CPUs and GPUs: no
Train controller, worker group, placement group or report hand-off, so a trial costs
what a plain Tune trial costs plus its training (docs/ray-notes.md, "Lean trials"). In
local mode Train's callbacks do not run, so the train function reports to Tune itself,
with a Tune checkpoint (search/ray/worker.py), and Tune's FailureConfig restarts a
crashed trial from its last checkpoint, on any node.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import train as ray_train
from ray import tune
from ray.train.torch import TorchTrainer

from collatz_ray.search.failures import TRAINER_ERRORS, failure_reason
from collatz_ray.search.ray.worker import train_worker
from collatz_ray.search.resources import trial_actor_resources
from collatz_ray.search.settings import TRIAL_CONFIG_FILE, SearchSettings

#: Restarts of a crashed trial (a killed process, a lost node) from its last checkpoint,
#: within one run of the search; --resume retries a trial that still failed.
TRIAL_RETRIES = 2


class TrialFailed(RuntimeError):
    """A trial's training failed (diverged, crashed past its retries, never started)."""


def collatz_trial(params: dict[str, Any], settings: SearchSettings, search_run: str) -> None:
    """A Tune function trainable: the sampled config trained by a TorchTrainer in local
    mode. `search_run` names this run of the search (a resume is a new run)."""
    context = tune.get_context()
    trial_id = context.get_trial_id()
    gpus = settings.gpus_per_trial
    config = settings.space.trial_config(params)
    config = config.replace(
        device="cuda" if gpus > 0 else "cpu", **({"eval_csv": settings.eval_csv} if settings.eval_csv else {})
    )
    trial_dir = context.get_trial_dir()
    if trial_dir:
        Path(trial_dir).mkdir(parents=True, exist_ok=True)
        (Path(trial_dir) / TRIAL_CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=1))
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={
            "train": config.to_dict(),
            "threads": max(1, round(settings.cpus_per_trial)),
            "search_run": search_run,
            "objective": settings.space.objective,
            "trial_id": trial_id,
            "bank": settings.bank,
        },
        # Local mode: this process is the worker. It holds the GPU share Tune reserved
        # for the trial (Ray sets CUDA_VISIBLE_DEVICES for it), so a fractional
        # --gpus-per-trial packs several trials on one GPU as before.
        scaling_config=ray_train.ScalingConfig(num_workers=0, use_gpu=gpus > 0),
        run_config=ray_train.RunConfig(name=trial_id),
    )
    try:
        trainer.fit()
    except Exception as err:
        if type(err).__name__ not in TRAINER_ERRORS:
            raise  # anything else keeps its traceback in error.txt
        # The trainer's own failures (a divergence, a bad setting) say everything in
        # one line: error.txt and the summaries get that line, not a traceback.
        raise TrialFailed(failure_reason(f"{type(err).__name__}: {err}")) from None


def trainable(settings: SearchSettings) -> type[tune.Trainable] | Callable[..., Any]:
    """The Tune trainable with its settings and resources attached. It keeps the name
    `collatz_trial`, which Tuner.restore needs to find it again."""
    resources = trial_actor_resources(
        cpus_per_trial=settings.cpus_per_trial, gpus_per_trial=settings.gpus_per_trial
    )
    # A trial needs no study database (and its URL may carry a password): leave it out of
    # what Tune pickles and ships to the trials.
    trial_settings = dataclasses.replace(settings, study=None)
    return tune.with_resources(
        tune.with_parameters(collatz_trial, settings=trial_settings, search_run=uuid.uuid4().hex), resources
    )
