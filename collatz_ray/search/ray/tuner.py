"""The search itself: TPE suggestions, ASHA stops, the Tuner, and running or resuming it."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

from ray import cloudpickle, tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from collatz_ray.errors import UsageError
from collatz_ray.search.objective import METRIC, MODE, TIME_ATTR
from collatz_ray.search.ray.callbacks import KeepTrialHistory, ReasonFirst, StorageGuard
from collatz_ray.search.ray.status import SearchStatus
from collatz_ray.search.ray.tracking import tracking_callbacks
from collatz_ray.search.ray.trial import trainable
from collatz_ray.search.settings import SearchSettings, save_settings, trial_dirname, write_atomically
from collatz_ray.search.spaces import SearchSpace
from collatz_ray.search.storage import StorageFailed, storage_failure_line, storage_write_problem

#: Optuna warns each time a restored trial reports a step it already holds; the reports
#: themselves are whole (search/ray/worker.py), so the warning tells a user nothing.
warnings.filterwarnings("ignore", message="The reported value is ignored because this `step=")


def make_searcher(space: SearchSpace, *, seed: int) -> OptunaSearch:
    """TPE over the space's define-by-run function, seeded: the same seed suggests the
    same configs in the same order (given the same results in the same order)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # constant_liar: TPE treats running trials as bad guesses, so concurrent trials
    # spread out instead of piling onto one region.
    sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    return OptunaSearch(space=space.suggest, metric=METRIC, mode=MODE, sampler=sampler)


def build_tuner(settings: SearchSettings, *, num_samples: int, verbose: int = 1) -> tune.Tuner:
    space = settings.space
    budget = space.budget
    searcher = make_searcher(space, seed=settings.seed)
    scheduler = ASHAScheduler(time_attr=TIME_ATTR, max_t=budget.epochs,
                              grace_period=budget.grace_epochs,
                              reduction_factor=budget.reduction_factor)
    return tune.Tuner(
        trainable(settings),
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, search_alg=searcher,
                                    scheduler=scheduler, num_samples=num_samples,
                                    max_concurrent_trials=settings.max_concurrent,
                                    trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(name=settings.experiment, storage_path=settings.storage,
                                  # Train retries crashed workers from checkpoints; a trial
                                  # that still fails is final (divergence is deterministic)
                                  # and --resume retries errored trials on demand.
                                  failure_config=tune.FailureConfig(max_failures=0),
                                  stop=(None if "://" in settings.storage
                                        else StorageGuard(settings.path)),
                                  callbacks=[KeepTrialHistory(), ReasonFirst(), *tracking_callbacks(settings)],
                                  progress_reporter=SearchStatus(
                                      parameters=[p.name for p in space.parameters],
                                      header=f"search {settings.experiment}", rungs=budget.rungs(),
                                      per_trial=(f"{settings.max_concurrent} at once, each "
                                                 f"{settings.cpus_per_trial:g} CPU + "
                                                 f"{settings.gpus_per_trial:g} GPU, its Train "
                                                 "worker included")),
                                  verbose=verbose),
    )


def run(settings: SearchSettings, *, num_samples: int, resume: bool = False):
    """Run (or resume) the search and return Ray's ResultGrid. Raises StorageFailed,
    with one line, when the experiment's storage stopped taking writes."""
    path = settings.path
    try:
        if resume:
            tuner = _restore(settings)
        else:
            save_settings(settings)
            tuner = build_tuner(settings, num_samples=num_samples)
        return tuner.fit()
    except StorageFailed as err:
        raise StorageFailed(storage_failure_line(settings.storage, settings.experiment, path,
                                                 str(err))) from None
    except Exception:
        # Whatever Ray raised (a truncated error.pkl, a failed write), a storage that no
        # longer takes writes is the reason to report.
        problem = storage_write_problem(path)
        if problem is None:
            raise
        raise StorageFailed(storage_failure_line(settings.storage, settings.experiment, path,
                                                 problem)) from None


def _restore(settings: SearchSettings) -> tune.Tuner:
    """Tune's restore, with damaged state (a truncated tuner.pkl or searcher state) said
    in one line instead of an unpickling traceback."""
    try:
        _retarget_new_trials(settings)
        return tune.Tuner.restore(settings.path, trainable=trainable(settings), resume_errored=True)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError) as err:
        raise UsageError(f"{settings.path}: Tune's saved state cannot be read ({type(err).__name__}: "
                         f"{str(err)[:120]}); the trials' files are untouched") from None


def _retarget_new_trials(settings: SearchSettings) -> None:
    """Make trials that a restored search creates land in the experiment where it now is.

    Tune moves the trials it restores to a moved or renamed experiment, but new trials
    copy the storage of the experiment spec saved with the search generator's state
    (search_gen_state-*.json, a pickle despite its name), which still
    names the old place: after `cp -r results/k1 results/k1c` and a resume of k1c, new
    trials wrote to k1 (or, with k1 gone, only to Ray's session directory). Point that
    saved storage at the experiment's current place first (local storage; a remote one
    is only ever resumed where it is)."""
    if "://" in settings.storage:
        return
    states = sorted(Path(settings.path).glob("search_gen_state-*.json"))
    if not states:
        return
    newest = states[-1]  # the one Tune loads: names sort by time
    with open(newest, "rb") as handle:
        state = cloudpickle.load(handle)
    storage = getattr(state.get("experiment") if isinstance(state, dict) else None, "storage", None)
    if storage is None or (storage.storage_fs_path, storage.experiment_dir_name) == (
            settings.storage, settings.experiment):
        return
    # In place: the experiment's spec holds the same object.
    storage.storage_fs_path = settings.storage
    storage.experiment_dir_name = settings.experiment
    write_atomically(newest, cloudpickle.dumps(state))


def can_restore(settings: SearchSettings) -> bool:
    return tune.Tuner.can_restore(settings.path)


def trial_summaries(result_grid) -> list[dict[str, Any]]:
    """One plain dict per trial: id, status, config, last metrics, error, path."""
    out = []
    for result in result_grid:
        metrics = dict(result.metrics or {})
        out.append({
            "trial_id": metrics.get("trial_id") or Path(result.path).name,
            "config": dict(result.config or {}),
            "metrics": metrics,
            "error": None if result.error is None else f"{type(result.error).__name__}: {result.error}",
            "path": result.path,
        })
    return out
