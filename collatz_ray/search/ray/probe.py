"""What a trial costs besides its training: a plain Tune trial to compare with, a clock
of each trial's wall time as the driver sees it, and the per-report figures of collatz
trials (used by collatz_ray.bench_search)."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

from ray import tune

from collatz_ray.search.objective import METRIC, TIME_ATTR

if TYPE_CHECKING:
    from ray.tune.experiment import Trial


class TrialClock(tune.Callback):
    """Each trial's wall time in a search that runs one trial at a time: from the end of
    the trial before it (or the search's first step, for the first) to its end, so actor
    start, imports and Tune's bookkeeping all count. (Tune adds the first trial before
    it calls on_trial_add of callbacks, so that hook cannot start the clock.)"""

    def __init__(self) -> None:
        self.walls: list[float] = []
        self._since: float | None = None

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if self._since is None:
            self._since = time.monotonic()

    def _ended(self) -> None:
        now = time.monotonic()
        if self._since is not None:
            self.walls.append(now - self._since)
        self._since = now

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._ended()

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._ended()


def _plain_trial(params: dict[str, Any]) -> None:
    """A Tune function trial that reports at once: what any trial costs."""
    tune.report({TIME_ATTR: 1, METRIC: 0.0})


def run_plain_trials(*, storage: str, experiment: str, num_samples: int, cpus: float) -> list[float]:
    """Each trial's wall seconds for `num_samples` plain trials of `cpus` run one at a time."""
    clock = TrialClock()
    tuner = tune.Tuner(
        tune.with_resources(_plain_trial, {"CPU": cpus}),
        param_space={"i": tune.grid_search(list(range(num_samples)))},
        tune_config=tune.TuneConfig(max_concurrent_trials=1),
        run_config=tune.RunConfig(name=experiment, storage_path=storage, verbose=0, callbacks=[clock]),
    )
    tuner.fit()
    return clock.walls


def report_figures(result_grid: tune.ResultGrid) -> list[dict[str, float]]:
    """Per trial: Tune's time to the first report, the trainer's own share of it, and the
    median time each later report took beyond the trainer's work between them (its
    epochs and evaluation, from `epochs_per_second`: the trainer's own clock runs on
    through a report that blocks)."""
    out = []
    for result in result_grid:  # type: ignore[attr-defined]  # it iterates through __getitem__
        frame = result.metrics_dataframe
        if frame is None or frame.empty:
            continue
        frame = frame.sort_values(TIME_ATTR)
        first = frame.iloc[0]
        between = frame["time_total_s"].diff().iloc[1:]
        work = (frame[TIME_ATTR].diff() / frame["epochs_per_second"]).iloc[1:]
        extra = (between - work).tolist()
        out.append(
            {
                "time_to_first_report": float(first["time_total_s"]),
                "trainer_seconds": float(first["seconds"]),
                "report_overhead": statistics.median(extra) if extra else float("nan"),
            }
        )
    return out
