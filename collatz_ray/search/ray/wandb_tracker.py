"""`--track wandb`: a W&B run per trial, in the project named after the search (or
$WANDB_PROJECT). Imports wandb (the `wandb` extra); loaded only when a search asks for it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ray.air.integrations.wandb import WandbLoggerCallback

from collatz_ray.search.ray import _ray_private as ray_private
from collatz_ray.search.ray.tracker_callbacks import GuardedTracker
from collatz_ray.search.settings import SearchSettings
from collatz_ray.search.storage import is_remote
from collatz_ray.search.tracking import wandb_server

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

#: wandb.init() arguments read from this shell's environment, for each trial anew.
_FROM_ENVIRONMENT = {"mode": "WANDB_MODE", "dir": "WANDB_DIR"}


#: Ray's private logging actor class, through the seam: a base class mypy cannot follow.
_RayWandbActor: Any = ray_private.wandb_logging_actor_class()


class _RunWrittenOut(_RayWandbActor):
    """Ray's W&B logging actor, returning only once W&B's service has written the run out.
    Ray kills the actor as soon as run() returns, but wandb.finish() returns before the
    service has flushed the run: a trial's offline run lost its whole history that way
    (docs/trackers.md)."""

    def run(self) -> None:
        super().run()
        ray_private.actor_wandb(self).teardown()


class EpochWandb(GuardedTracker, WandbLoggerCallback):
    """Ray's W&B logger: a run per trial (its id the trial id, grouped by search), with
    the trial's searched parameters as its config and every report's numbers at its
    epoch. Without WANDB_DIR the runs' files land in the experiment (its `wandb/`) when
    the experiment is on a local or mounted disk."""

    what = "W&B"

    def __init__(self, *, project: str, in_experiment: bool) -> None:
        # resume="allow" (Ray passes no resume): a trial that --resume continues goes on
        # in its own run, the same id from its last step, without overwriting it.
        super().__init__(project=project, resume="allow")
        self.in_experiment = in_experiment

    def setup(self, *args: Any, **kwargs: Any) -> None:
        super().setup(*args, **kwargs)
        # Online, each trial's logging actor would wait on an unreachable server in
        # wandb.init (W&B's own timeout is 90 s), and the search's end on those actors
        # (Ray's upload timeout: 30 minutes). Asked once here instead.
        self._stop_if_unreachable(wandb_server())

    def log_trial_start(self, trial: Trial) -> None:
        # Each run is logged by an actor that Ray's raylet starts, with the cluster's
        # environment rather than this shell's: hand it WANDB_MODE and WANDB_DIR. Read
        # now, not when the search started: a resumed search takes the shell's current
        # ones, and the experiment where it now is.
        init = {arg: os.environ[var] for arg, var in _FROM_ENVIRONMENT.items() if os.environ.get(var)}
        if "dir" not in init and self.in_experiment:
            assert trial.storage is not None  # Ray types it optional; a Tuner's trials always have it
            init["dir"] = trial.storage.experiment_fs_path
        ray_private.wandb_init_arguments(self).update(init)
        super().log_trial_start(trial)


ray_private.use_wandb_logging_actor(EpochWandb, _RunWrittenOut)


def wandb_callback(settings: SearchSettings) -> EpochWandb:
    return EpochWandb(
        project=os.environ.get("WANDB_PROJECT") or settings.experiment,
        in_experiment=not is_remote(settings.storage),
    )
