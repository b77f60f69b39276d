"""The search itself: TPE suggestions, ASHA stops, the Tuner, and running or resuming it."""

from __future__ import annotations

import dataclasses
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from collatz_ray.errors import UsageError
from collatz_ray.search.objective import METRIC, MODE, TIME_ATTR
from collatz_ray.search.ray import _ray_private as ray_private
from collatz_ray.search.ray.callbacks import KeepTrialHistory, PlacementGuard, ReasonFirst, StorageGuard
from collatz_ray.search.ray.given import GivenConfigs
from collatz_ray.search.ray.searcher import StudySearch
from collatz_ray.search.ray.status import SearchStatus
from collatz_ray.search.ray.tracker_callbacks import tracking_callbacks
from collatz_ray.search.ray.trial import TRIAL_RETRIES, trainable
from collatz_ray.search.settings import SearchSettings, save_settings, trial_dirname
from collatz_ray.search.storage import (
    StorageFailed,
    is_remote,
    storage_failure_line,
    storage_write_problem,
)
from collatz_ray.search.study import resolve_study

#: Optuna warns each time a restored trial reports a step it already holds; the reports
#: themselves are whole (search/ray/worker.py), so the warning tells a user nothing.
warnings.filterwarnings("ignore", message="The reported value is ignored because this `step=")


def build_tuner(
    settings: SearchSettings,
    *,
    num_samples: int,
    verbose: int = 1,
    points: Sequence[dict[str, Any]] | None = None,
    callbacks: Sequence[tune.Callback] = (),
) -> tune.Tuner:
    """TPE over the space's define-by-run function, seeded (the same seed suggests the
    same configs in the same order, given the same results in the same order) and
    recorded in the study database, stopped early by ASHA; or, given `points` (a
    replication's trials, collatz_ray/search/replication.py), those configs, each trained
    to the full budget. `callbacks` are Tune callbacks besides the search's own (a
    benchmark's clock)."""
    space = settings.space
    budget = space.budget
    searcher: Searcher
    scheduler: TrialScheduler
    if points is None:
        assert settings.study is not None  # run() resolves it before it builds a search
        searcher = StudySearch(space, seed=settings.seed, storage=settings.study, max_epochs=budget.epochs)
        scheduler = ASHAScheduler(
            time_attr=TIME_ATTR,
            max_t=budget.epochs,
            grace_period=budget.grace_epochs,
            reduction_factor=budget.reduction_factor,
        )
    else:
        searcher, scheduler = GivenConfigs(points), FIFOScheduler()
    return tune.Tuner(
        trainable(settings),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=num_samples,
            max_concurrent_trials=settings.max_concurrent,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=settings.experiment,
            storage_path=settings.storage,
            # A crashed trial restarts from its last checkpoint; one
            # that still fails is final for this run and --resume
            # retries errored trials on demand.
            failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            stop=(None if is_remote(settings.storage) else StorageGuard(settings.path)),
            callbacks=[
                KeepTrialHistory(),
                ReasonFirst(),
                PlacementGuard(settings.start_timeout_s),
                *tracking_callbacks(settings),
                *callbacks,
            ],
            progress_reporter=SearchStatus(
                # A replication's trials of one config differ by seed only.
                parameters=[*(["seed"] if points is not None else []), *(p.name for p in space.parameters)],
                header=f"search {settings.experiment}",
                rungs=budget.rungs(),
                per_trial=(
                    f"{settings.max_concurrent} at once, each "
                    f"{settings.cpus_per_trial:g} CPU + "
                    f"{settings.gpus_per_trial:g} GPU"
                ),
            ),
            verbose=verbose,
        ),
    )


def run(
    settings: SearchSettings,
    *,
    num_samples: int,
    resume: bool = False,
    extend: int = 0,
    points: Sequence[dict[str, Any]] | None = None,
    callbacks: Sequence[tune.Callback] = (),
    verbose: int = 1,
) -> tune.ResultGrid:
    """Run (or resume) the search and return Ray's ResultGrid; `extend` adds that many
    trials to a resumed one, `points` replaces TPE by given configs. Raises
    StorageFailed, with one line, when the experiment's storage stopped taking writes."""
    path = settings.path
    # A storage guard that Tune restores guards this experiment, wherever it was saved.
    StorageGuard.running = None if is_remote(settings.storage) else path
    try:
        if resume:
            tuner = _restore(settings, extend=extend)
        else:
            if settings.study is None and points is None:  # every search records its study
                settings = dataclasses.replace(
                    settings,
                    study=resolve_study(
                        given=None,
                        saved=None,
                        experiment_dir=settings.path,
                        name=settings.experiment,
                        remote=is_remote(settings.storage),
                    ),
                )
            save_settings(settings)
            tuner = build_tuner(
                settings, num_samples=num_samples, points=points, callbacks=callbacks, verbose=verbose
            )
        return tuner.fit()
    except StorageFailed as err:
        raise StorageFailed(
            storage_failure_line(settings.storage, settings.experiment, path, str(err))
        ) from None
    except Exception:
        # Whatever Ray raised (a truncated error.pkl, a failed write), a storage that no
        # longer takes writes is the reason to report.
        problem = storage_write_problem(path)
        if problem is None:
            raise
        raise StorageFailed(
            storage_failure_line(settings.storage, settings.experiment, path, problem)
        ) from None


def _restore(settings: SearchSettings, *, extend: int = 0) -> tune.Tuner:
    """Tune's restore, with damaged state (a truncated tuner.pkl or searcher state) said
    in one line instead of an unpickling traceback. An extension leaves errored trials
    as they are; a plain resume retries them.

    Nothing of the experiment is rewritten until everything it needs has been read and
    checked: a refused resume or extension leaves every file as it was, and an
    extension's new total of trials (search state and collatz_search.json) is recorded
    only once the search can start."""
    try:
        tuner = tune.Tuner.restore(settings.path, trainable=trainable(settings), resume_errored=not extend)
        searcher = ray_private.restored_searcher(tuner)
        if isinstance(searcher, StudySearch):
            searcher.use_storage(settings.study)
        retargeted = _retargeted_search_state(settings, extend=extend)
    except UsageError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
    ) as err:
        raise UsageError(
            f"{settings.path}: Tune's saved state cannot be read ({type(err).__name__}: "
            f"{str(err)[:120]}); the trials' files are untouched"
        ) from None
    if retargeted is not None:
        ray_private.write_generator_state(*retargeted)
    if extend:
        save_settings(settings)  # the new total of trials, for the summaries and later resumes
    return tuner


def _retargeted_search_state(
    settings: SearchSettings, *, extend: int = 0
) -> tuple[Path, dict[str, Any]] | None:
    """The search generator's saved state (its file and the state) changed so that trials
    a restored search creates land in the experiment where it now is, and so that it may
    create `extend` trials more than it was started with; None when nothing changes.
    Reads only: the caller writes it once the whole restore has been checked.

    Tune moves the trials it restores to a moved or renamed experiment, but new trials
    copy the storage of the experiment spec saved with the search generator's state
    (search_gen_state-*.json, a pickle despite its name), which still
    names the old place: after `cp -r results/k1 results/k1c` and a resume of k1c, new
    trials wrote to k1 (or, with k1 gone, only to Ray's session directory). Point that
    saved storage at the experiment's current place first (local storage; a remote one
    is only ever resumed where it is).

    The same saved state counts the trials the search generator may still create
    (`total_samples`); an extension raises it and clears `finished`."""
    if is_remote(settings.storage):
        if extend:
            raise UsageError(
                f"--extend {settings.experiment}: experiments on remote storage cannot be "
                "extended in place; copy it to a local directory first"
            )
        return None
    states = ray_private.generator_state_files(settings.path)
    if not states:
        if extend:
            raise UsageError(
                f"--extend {settings.experiment}: {settings.path} holds no search state "
                f"({ray_private.GENERATOR_STATE_GLOB}) to extend"
            )
        return None
    newest = states[-1]  # the one Tune loads: names sort by time
    state = ray_private.read_generator_state(newest)
    if extend:
        ray_private.allow_more_trials(state, extend)
    moved = ray_private.retarget_generator_storage(
        state, storage_path=settings.storage, experiment=settings.experiment
    )
    return (newest, state) if extend or moved else None


def can_restore(settings: SearchSettings) -> bool:
    return tune.Tuner.can_restore(settings.path)


def trial_summaries(result_grid: tune.ResultGrid) -> list[dict[str, Any]]:
    """One plain dict per trial: id, status, config, last metrics, error, path."""
    out = []
    for result in result_grid:  # type: ignore[attr-defined]  # it iterates through __getitem__
        metrics = dict(result.metrics or {})
        out.append(
            {
                "trial_id": metrics.get("trial_id") or Path(result.path).name,
                "config": dict(result.config or {}),
                "metrics": metrics,
                "error": None if result.error is None else f"{type(result.error).__name__}: {result.error}",
                "path": result.path,
            }
        )
    return out
