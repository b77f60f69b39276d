"""`python -m collatz_ray.tune --rebuild-study NAME`: an experiment's study database made
again from its trials' own files, for when optuna.db is damaged, truncated, replaced or
lost (search/study.py's check_study refuses such a database before a search resumes).

Each trial the experiment knows of is replayed into a fresh study, in the order they
started: its sampled parameters (params.json) under the distributions of the
experiment's space, its reported objective by epoch (result.json), and how it ended as
the search's own searcher (search/ray/searcher.py) tells it: COMPLETE at the full
budget, PRUNED when ASHA stopped it short, FAIL when it errored or never reported, and
RUNNING while it still has epochs to go (the resumed search goes on reporting to it).
TPE then learns from the whole history again when the search is extended.

The old file is moved aside, never deleted: optuna.db.damaged-<time> beside it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

from collatz_ray.errors import UsageError
from collatz_ray.results.read import Trial, is_number, load_experiment
from collatz_ray.search.objective import METRIC, MODE
from collatz_ray.search.spaces import SearchSpace, optuna_choice
from collatz_ray.search.study import STUDY_FILE, TUNE_TRIAL_ATTR, StudyStorage, open_storage


@dataclasses.dataclass(frozen=True)
class Rebuilt:
    """What a rebuild did: trials replayed by Optuna state, and where the old file went."""

    states: dict[str, int]
    moved_aside: Path | None


def rebuild_study(experiment_dir: Path, study: StudyStorage, space: SearchSpace) -> Rebuilt:
    """Replay the trials of the experiment at `experiment_dir` into a fresh study
    database in place of its own `optuna.db` (moved aside if there is one). The new
    database is written beside it and renamed into place only when it is whole."""
    import optuna
    from optuna.trial import TrialState, create_trial

    if not study.in_experiment:
        raise UsageError(
            f"--rebuild-study {experiment_dir.name}: the experiment records its study in "
            f"{study.shown}, not in its own {STUDY_FILE}; only that file is rebuilt here"
        )
    experiment = load_experiment(experiment_dir)
    target = experiment_dir / STUDY_FILE
    fresh = experiment_dir / f".{STUDY_FILE}.rebuild-{os.getpid()}"
    fresh.unlink(missing_ok=True)
    states: dict[str, int] = {}
    try:
        storage = open_storage(f"sqlite:///{fresh}")
        try:
            optuna_study = optuna.create_study(
                storage=storage,
                study_name=study.study_name,
                direction="minimize" if MODE == "min" else "maximize",
            )
            for trial in sorted(experiment.trials, key=_start_order):
                state, value, values = _outcome(trial, experiment.budget.epochs)
                params, distributions = _sampled(trial, space)
                if params is None:
                    state, value, values = TrialState.FAIL, None, {}
                optuna_study.add_trial(
                    create_trial(
                        state=state,
                        value=value,
                        params=params or {},
                        distributions=distributions,
                        user_attrs={TUNE_TRIAL_ATTR: trial.trial_id},
                        intermediate_values=values,
                    )
                )
                states[state.name] = states.get(state.name, 0) + 1
        finally:
            storage.remove_session()
            storage.engine.dispose()
        moved = None
        if target.exists():
            moved = target.with_name(f"{STUDY_FILE}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(target, moved)
        os.replace(fresh, target)
    finally:
        fresh.unlink(missing_ok=True)
    return Rebuilt(states, moved)


def _start_order(trial: Trial) -> tuple[float, str]:
    """When the trial first reported (Tune's timestamp), trials yet to report last."""
    first = trial.reports[0].get("timestamp") if trial.reports else None
    return (float(first) if is_number(first) else math.inf, trial.trial_id)


def _outcome(trial: Trial, budget_epochs: int | None) -> tuple[Any, float | None, dict[int, float]]:
    """(Optuna state, value, objective by epoch) as the searcher would have told them."""
    from optuna.trial import TrialState

    values = {
        int(r["epoch"]): float(r[METRIC])
        for r in trial.reports
        if is_number(r.get("epoch")) and is_number(r.get(METRIC)) and math.isfinite(r[METRIC])
    }
    kind = trial.ending.kind
    if kind in ("running", "pending"):
        return TrialState.RUNNING, None, values
    if kind == "errored" or not values:
        return TrialState.FAIL, None, {}
    last = values[max(values)]
    if budget_epochs is not None and max(values) < budget_epochs:
        return TrialState.PRUNED, last, values
    return TrialState.COMPLETE, last, values


def _sampled(trial: Trial, space: SearchSpace) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The trial's parameters as Optuna records them, with their distributions: the
    space's define-by-run body replayed on the values the trial sampled. (None, {}) when
    they do not fit the space (a damaged params.json): the trial is replayed as failed."""
    import optuna

    searched = {p.name: p for p in space.parameters}
    encoded = {
        name: (value if searched[name].is_range else optuna_choice(_tupled(value)))
        for name, value in trial.params.items()
        if name in searched
    }
    fixed = optuna.trial.FixedTrial(encoded)
    try:
        space.suggest(fixed)
    except (ValueError, TypeError):  # a parameter missing, or a value the space cannot take
        return None, {}
    return fixed.params, fixed.distributions


def _tupled(value: Any) -> Any:
    """A list-valued choice as the space holds it (layers: a tuple)."""
    return tuple(value) if isinstance(value, list) else value
