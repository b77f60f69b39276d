"""The experiment trackers Tune is handed: TensorBoard event files in every trial folder,
and MLflow and W&B when `--track` asks for them (collatz_ray/search/tracking.py).

They are Ray's own logger callbacks with two changes:

- The x-axis is the epoch. Tune's loggers take their step from `training_iteration`,
  the count of a trial's reports, so a trial evaluated every 20 epochs would plot at
  1, 2, 3 and a trial restarted by --resume would start again at 1. Each tracker sees
  a report with `training_iteration` set to its epoch instead (the report count stays
  in result.json), and without the `config` Tune repeats in every report (the trial's
  parameters are logged once, as parameters).
- A tracker that fails (a tracking server gone, a full disk) says so in one line and
  stops logging; the search goes on, and its own files hold every report. A tracker
  whose server does not answer as the search starts (Tune's setup of its callbacks, on
  --resume too) is that line at once: no trial waits on its retries.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ray.air.constants import TRAINING_ITERATION
from ray.tune.logger import LoggerCallback, TBXLoggerCallback

from collatz_ray.search.failures import failure_reason
from collatz_ray.search.objective import TIME_ATTR
from collatz_ray.search.settings import SearchSettings
from collatz_ray.search.tracking import unreachable

if TYPE_CHECKING:
    from ray.tune.experiment import Trial


def tracking_callbacks(settings: SearchSettings) -> list[Any]:
    """Tune callbacks for the search's trackers. EpochTensorBoard takes the place of
    Tune's default TensorBoard logger (Tune adds its own only when none is given). The
    MLflow and W&B modules load only when asked for: each imports its package, seconds."""
    callbacks: list[Any] = [EpochTensorBoard()]
    for tracker in settings.track:
        if tracker.kind == "mlflow":
            from collatz_ray.search.ray.mlflow_tracker import mlflow_callback

            callbacks.append(mlflow_callback(tracker, experiment=settings.experiment))
        else:
            from collatz_ray.search.ray.wandb_tracker import wandb_callback

            callbacks.append(wandb_callback(settings))
    return callbacks


def at_epoch(result: dict[str, Any]) -> dict[str, Any]:
    """A report as the trackers see it: the epoch as its step, Tune's config left out."""
    epoch = result.get(TIME_ATTR)
    kept = {key: value for key, value in result.items() if key != "config"}
    if isinstance(epoch, int) and not isinstance(epoch, bool):
        kept[TRAINING_ITERATION] = epoch
    return kept


class GuardedTracker(LoggerCallback):
    """Mixed into a Tune logger callback (the first base, before Ray's class): each report
    at its epoch (at_epoch), and each logging call guarded: the first failure is one line
    on stderr, and the tracker logs nothing more (a half-working tracker would leave gaps
    nobody sees)."""

    what = "tracker"
    _off = False

    def _guard(self, call: Callable[..., object], *args: Any) -> None:
        if self._off:
            return
        try:
            call(*args)
        except Exception as err:  # noqa: BLE001 - any tracker error ends its logging, not the search
            self._stop(failure_reason(f"{type(err).__name__}: {err}", fallback=type(err).__name__))

    def _stop_if_unreachable(self, uri: str | None) -> None:
        """Called as the search starts: a server that refuses or keeps silent ends this
        tracker's logging before any trial would wait on it."""
        if not self._off and (problem := unreachable(uri)):
            self._stop(problem)

    def _stop(self, reason: str) -> None:
        self._off = True
        print(
            f"collatz_ray.tune: warning: {self.what} stopped logging ({reason[:300]}); the search "
            "goes on and its own files keep every report",
            file=sys.stderr,
            flush=True,
        )

    def log_trial_start(self, trial: Trial) -> None:
        self._guard(super().log_trial_start, trial)

    def log_trial_result(self, iteration: int, trial: Trial, result: dict[str, Any]) -> None:
        self._guard(super().log_trial_result, iteration, trial, at_epoch(result))

    def log_trial_end(self, trial: Trial, failed: bool = False) -> None:
        self._guard(super().log_trial_end, trial, failed)


class EpochTensorBoard(GuardedTracker, TBXLoggerCallback):
    """Tune's tensorboardX event files in each trial folder, one point per evaluation at
    its epoch."""

    what = "TensorBoard"
