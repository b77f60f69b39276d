"""`--track mlflow[=URI]`: an MLflow run per trial, in the MLflow experiment named after
the search. Imports mlflow (the `mlflow` extra); loaded only when a search asks for it."""

from __future__ import annotations

import math
import numbers
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.air.constants import TRAINING_ITERATION
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.utils import flatten_dict

from collatz_ray.search.ray import _ray_private as ray_private
from collatz_ray.search.ray.tracker_callbacks import GuardedTracker, at_epoch
from collatz_ray.search.tracking import Tracker, experiment_mlflow_uri, mlflow_uri

if TYPE_CHECKING:
    from ray.tune.experiment import Trial


class EpochMLflow(GuardedTracker, MLflowLoggerCallback):
    """Ray's MLflow logger: a run per trial, named like its folder, with the trial's
    searched parameters as MLflow params and every report's numbers at its epoch.

    With no tracking URI the store is the experiment's own (experiment_mlflow_uri),
    opened with the first trial, which knows where the experiment now is: a moved
    experiment that is resumed logs into the store it carries."""

    what = "MLflow"

    def setup(self, *args: Any, **kwargs: Any) -> None:
        self._opened = False
        self._stop_if_unreachable(self.tracking_uri)

    def log_trial_start(self, trial: Trial) -> None:
        if not self._opened:
            self._opened = True
            if self.tracking_uri is None:
                assert trial.storage is not None  # Ray types it optional; a Tuner's trials always have it
                self.tracking_uri = experiment_mlflow_uri(Path(trial.storage.experiment_fs_path))
            self._guard(self._open)
        super().log_trial_start(trial)

    def _open(self) -> None:
        from mlflow.tracking import MlflowClient

        super().setup()
        self._client = MlflowClient(self.tracking_uri)

    def log_trial_result(self, iteration: int, trial: Trial, result: dict[str, Any]) -> None:
        self._guard(self._log_report, trial, at_epoch(result))

    def _log_report(self, trial: Trial, result: dict[str, Any]) -> None:
        """All of a report's numbers in one batch at its epoch. Ray's logger sends each
        number on its own, a store transaction each: tens of seconds per report on a
        busy machine, during which the search waits."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        step = result[TRAINING_ITERATION]
        metrics = [
            Metric(key, float(value), now, step)
            for key, value in flatten_dict(result).items()
            if key != TRAINING_ITERATION
            and isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and math.isfinite(value)
        ]
        self._client.log_batch(ray_private.mlflow_run_id(self, trial), metrics=metrics)


#: MLflow's own defaults retry an unreachable or silent server for minutes (7 retries with
#: backoff, 120 s per request), and every call runs in the search's driver loop: with
#: --track mlflow=http://127.0.0.1:9 no trial started for 4 minutes. One try of at most
#: 5 s, then the tracker's one warning; set either variable to choose otherwise.
MLFLOW_BOUNDS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def mlflow_callback(tracker: Tracker, *, experiment: str) -> EpochMLflow:
    for name, value in MLFLOW_BOUNDS.items():
        os.environ.setdefault(name, value)
    return EpochMLflow(mlflow_uri(tracker), experiment_name=experiment)
