"""TPE suggestions recorded in a study database, with ASHA's stops told to Optuna as such.

Ray's OptunaSearch keys intermediate values by report index and tells every stopped
trial COMPLETE, so TPE would weigh a value measured after 20k epochs like one after
100k. StudySearch keys them by epoch and tells trials that stopped short of the budget
PRUNED: TPE ranks every full-budget trial above them, and pruned ones by how far they
got. It also keeps database connections (and passwords) out of Tune's pickles, writes
through a lock held by someone else instead of crashing the driver, and, when a search
resumes, settles what a killed driver left behind in the study. docs/search.md tells the
whole story.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ray.tune.search.optuna import OptunaSearch

from collatz_ray.search._optuna_private import storage_trial_id, trial_handle
from collatz_ray.search.objective import METRIC, MODE, TIME_ATTR
from collatz_ray.search.ray import _ray_private as ray_private
from collatz_ray.search.spaces import SearchSpace
from collatz_ray.search.study import TUNE_TRIAL_ATTR, StudyStorage, open_storage

if TYPE_CHECKING:
    import optuna
    from optuna.trial import TrialState

log = logging.getLogger(__name__)

#: Set on a trial the study held as running although no Tune trial ran it (a driver
#: killed between Optuna's ask and Tune's next save of its state).
ORPHAN_ATTR = "orphaned"
#: Attempts, with doubling waits from 1 s, at a database write another writer blocks.
WRITE_ATTEMPTS = 4


class StudySearch(OptunaSearch):
    """OptunaSearch over a study in a database (search/study.py)."""

    def __init__(self, space: SearchSpace, *, seed: int, storage: StudyStorage, max_epochs: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # constant_liar: TPE treats running trials as bad guesses, so concurrent trials
        # spread out instead of piling onto one region.
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        #: None once unpickled, until the driver hands it over again (use_storage).
        self._study_storage: StudyStorage | None = storage
        self._max_epochs = max_epochs
        #: Tune trial id -> the Optuna trial's database id: what the pickles keep.
        self._study_ids: dict[str, int] = {}
        #: Tells the database refused, retried at every later event and on resume.
        self._pending: dict[str, tuple[float | None, str]] = {}
        super().__init__(
            space=space.suggest,
            metric=METRIC,
            mode=MODE,
            sampler=sampler,
            storage=open_storage(storage.url),
            study_name=storage.study_name,
        )

    # -- the database connection stays out of every pickle --------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ray_private.OPTUNA_SEARCH_CONNECTIONS:
            state[key] = None
        # The URL may carry a password; the driver hands it over again on restore.
        state["_study_storage"] = None
        return state

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.__getstate__(), handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            saved = pickle.load(handle)
        storage = self._study_storage
        self.__dict__.update(
            {
                k: v
                for k, v in saved.items()
                if k not in ("_study_storage", *ray_private.OPTUNA_SEARCH_CONNECTIONS)
            }
        )
        self._study_storage = storage
        ray_private.detach_study(self)

    def use_storage(self, storage: StudyStorage | None) -> None:
        """The study's database for a restored search (Tune's pickles do not hold it)."""
        self._study_storage = storage
        ray_private.detach_study(self)

    def _study(self) -> optuna.Study:
        """The live study, connected (again) on first use after a restore."""
        if ray_private.searcher_study(self) is None:
            self._connect()
        return ray_private.searcher_study(self)

    def _database(self) -> StudyStorage:
        if self._study_storage is None:
            raise RuntimeError("StudySearch restored without its study database (use_storage)")
        return self._study_storage

    def _connect(self) -> None:
        import optuna

        database = self._database()
        storage = open_storage(database.url)
        study = optuna.create_study(
            storage=storage,
            sampler=ray_private.searcher_sampler(self),
            pruner=optuna.pruners.NopPruner(),
            study_name=database.study_name,
            direction="minimize" if MODE == "min" else "maximize",
            load_if_exists=True,
        )
        # The database says which Optuna trial is which Tune trial's: a study rebuilt from
        # the trials' files (tune --rebuild-study) numbers them anew.
        recorded = {
            t.user_attrs[TUNE_TRIAL_ATTR]: storage_trial_id(t)
            for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get(TUNE_TRIAL_ATTR) in self._study_ids
        }
        self._study_ids.update(recorded)
        trials = {tid: trial_handle(study, sid) for tid, sid in self._study_ids.items()}
        ray_private.attach_study(self, storage=storage, study=study, trials=trials)
        self._settle()

    def _settle(self) -> None:
        """After a driver stopped: a trial the study holds as running but Tune never
        recorded is failed (and marked), and tells that had not reached the database
        are made now."""
        from optuna.trial import TrialState

        known = set(self._study_ids.values())
        storage = ray_private.searcher_storage(self)
        for frozen in ray_private.searcher_study(self).get_trials(
            deepcopy=False, states=(TrialState.RUNNING,)
        ):
            orphan = storage_trial_id(frozen)
            if orphan not in known:
                storage.set_trial_user_attr(orphan, ORPHAN_ATTR, True)
                storage.set_trial_state_values(orphan, TrialState.FAIL)
        self._flush_pending()

    def _flush_pending(self) -> None:
        from optuna.trial import TrialState

        for trial_id, (value, state) in list(self._pending.items()):
            self._tell(trial_id, value, TrialState[state])

    # -- Tune's events --------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        study = self._study()
        trials = ray_private.searcher_trials(self)
        if trial_id not in trials:
            ot_trial = self._write(study.ask, give_up_quietly=True)
            if ot_trial is _FAILED:
                return None  # no suggestion for now: Tune asks again later
            self._write(lambda: ot_trial.set_user_attr(TUNE_TRIAL_ATTR, trial_id), give_up_quietly=True)
            trials[trial_id] = ot_trial
            self._study_ids[trial_id] = storage_trial_id(ot_trial)
        return super().suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        value, epoch = result.get(self.metric), result.get(TIME_ATTR)
        if trial_id in ray_private.searcher_finished(self) or value is None or epoch is None:
            return
        self._study()
        # An intermediate value a locked database refuses is left out of the study (the
        # trial's result.json keeps it); the search goes on.
        self._write(
            lambda: ray_private.searcher_trials(self)[trial_id].report(float(value), int(epoch)),
            quiet_if_finished=True,
            give_up_quietly=True,
        )

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        from optuna.trial import TrialState

        if trial_id in ray_private.searcher_finished(self):
            return
        self._study()
        self._flush_pending()
        value = (result or {}).get(self.metric)
        epoch = (result or {}).get(TIME_ATTR)
        if value is not None and epoch is not None:
            # Tune hands a trial's last result to on_trial_complete alone.
            last, step = float(value), int(epoch)
            self._write(
                lambda: ray_private.searcher_trials(self)[trial_id].report(last, step),
                quiet_if_finished=True,
                give_up_quietly=True,
            )
        if error or value is None:
            state, value = TrialState.FAIL, None
        elif epoch is not None and epoch < self._max_epochs:
            state, value = TrialState.PRUNED, None  # Optuna takes the last intermediate value
        else:
            state = TrialState.COMPLETE
        self._tell(trial_id, value, state)
        ray_private.searcher_finished(self).add(trial_id)

    def _tell(self, trial_id: str, value: float | None, state: TrialState) -> None:
        self._pending[trial_id] = (value, state.name)
        ot_trial = ray_private.searcher_trials(self)[trial_id]
        done = self._write(
            lambda: ray_private.searcher_study(self).tell(ot_trial, value, state=state),
            quiet_if_finished=True,
            give_up_quietly=True,
        )
        if done is not _FAILED:
            del self._pending[trial_id]

    def _write(
        self, action: Callable[[], Any], *, quiet_if_finished: bool = False, give_up_quietly: bool = False
    ) -> Any:
        """A database write, retried while another writer holds the lock; with
        `give_up_quietly`, _FAILED after the last attempt instead of an error that would
        stop the driver. A write to a trial the study already closed (a resumed trial
        reporting again, a tell the driver made before it was killed) is skipped: the
        study has it."""
        from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
        from sqlalchemy.exc import OperationalError

        wait = 1.0
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return action()
            except (UpdateFinishedTrialError, ValueError) as err:
                finished = isinstance(err, UpdateFinishedTrialError) or str(err).startswith("Cannot tell a")
                if quiet_if_finished and finished:
                    return None
                raise
            except (OperationalError, StorageInternalError) as err:
                if attempt + 1 == WRITE_ATTEMPTS:
                    if give_up_quietly:
                        log.warning(
                            "study database %s: a write failed %d times (%s); it is retried "
                            "at the next event and on --resume",
                            self._database().shown,
                            WRITE_ATTEMPTS,
                            str(err).splitlines()[0][:160],
                        )
                        return _FAILED
                    raise
                time.sleep(wait)
                wait *= 2


_FAILED = object()
