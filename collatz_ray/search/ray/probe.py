"""What a trial costs before it trains: a plain Tune trial to compare with, and the time
each collatz trial took to its first report (used by collatz_ray.bench_search)."""

from __future__ import annotations

import time
from typing import Any

from ray import tune

from collatz_ray.search.objective import METRIC, TIME_ATTR
from collatz_ray.search.resources import TRIAL_ACTOR_CPU


def _plain_trial(params: dict[str, Any]) -> None:
    """A Tune function trial that reports at once: what a trial costs without Train."""
    tune.report({TIME_ATTR: 1, METRIC: 0.0})


def run_plain_trials(*, storage: str, experiment: str, num_samples: int) -> float:
    """Wall seconds for `num_samples` plain trials run one at a time."""
    tuner = tune.Tuner(
        tune.with_resources(_plain_trial, {"CPU": TRIAL_ACTOR_CPU}),
        param_space={"i": tune.grid_search(list(range(num_samples)))},
        tune_config=tune.TuneConfig(max_concurrent_trials=1),
        run_config=tune.RunConfig(name=experiment, storage_path=storage, verbose=0))
    started = time.monotonic()
    tuner.fit()
    return time.monotonic() - started


def first_report_seconds(result_grid) -> list[dict[str, float]]:
    """Per trial: Tune's time to the first report, and the trainer's own share of it."""
    out = []
    for result in result_grid:
        frame = result.metrics_dataframe
        if frame is None or frame.empty:
            continue
        first = frame.sort_values(TIME_ATTR).iloc[0]
        out.append({"time_to_first_report": float(first["time_total_s"]),
                    "trainer_seconds": float(first["seconds"])})
    return out
