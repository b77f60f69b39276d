"""StudySearch (search/ray/searcher.py) against real Optuna studies in real SQLite files,
driven through the calls Tune makes (suggest, on_trial_result, on_trial_complete, save,
restore) in the order Tune makes them."""

from __future__ import annotations

import pickle
import random
import sqlite3

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from collatz_ray.search import study as study_module
from collatz_ray.search.objective import METRIC, MODE, TIME_ATTR
from collatz_ray.search.ray import searcher as searcher_module
from collatz_ray.search.ray.searcher import ORPHAN_ATTR, TUNE_TRIAL_ATTR, StudySearch
from collatz_ray.search.spaces import load_space
from collatz_ray.search.study import StudyStorage

MAX_EPOCHS = 100


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "budget: {epochs: 100, eval_interval: 20, grace_epochs: 20}\n"
        "parameters:\n  lookahead: {values: [10, 100]}\n"
        "  lr: {distribution: log_uniform, min: 1.0e-4, max: 1.0e-2}\n"
    )
    return load_space(path)


def storage_at(tmp_path, name="exp") -> StudyStorage:
    return StudyStorage(url=f"sqlite:///{tmp_path / 'optuna.db'}", study_name=name, in_experiment=True)


def load(storage: StudyStorage) -> optuna.Study:
    return optuna.load_study(study_name=storage.study_name, storage=storage.url)


def report(searcher, trial_id: str, value: float, epoch: int) -> None:
    searcher.on_trial_result(trial_id, {METRIC: value, TIME_ATTR: epoch, "training_iteration": epoch // 20})


def finish(searcher, trial_id: str, value: float, epoch: int, error: bool = False) -> None:
    searcher.on_trial_complete(
        trial_id, {METRIC: value, TIME_ATTR: epoch, "training_iteration": epoch // 20}, error=error
    )


def test_stops_are_pruned_with_values_keyed_by_epoch(tmp_path, space):
    storage = storage_at(tmp_path)
    s = StudySearch(space, seed=0, storage=storage, max_epochs=MAX_EPOCHS)
    for tid in ("stopped", "full", "failed"):
        assert set(s.suggest(tid)) == {"lookahead", "lr"}
    report(s, "stopped", 9.0, 20)
    finish(s, "stopped", 8.0, 40)  # ASHA stopped it at epoch 40 of 100
    for epoch in (20, 40, 60, 80):
        report(s, "full", 10.0 - epoch / 20, epoch)
    finish(s, "full", 4.5, 100)
    report(s, "failed", 7.0, 20)
    finish(s, "failed", 7.0, 20, error=True)
    trials = {t.user_attrs[TUNE_TRIAL_ATTR]: t for t in load(storage).trials}
    assert trials["stopped"].state == TrialState.PRUNED
    assert trials["stopped"].intermediate_values == {20: 9.0, 40: 8.0}
    assert trials["stopped"].value == 8.0
    assert trials["full"].state == TrialState.COMPLETE and trials["full"].value == 4.5
    assert trials["full"].intermediate_values == {20: 9.0, 40: 8.0, 60: 7.0, 80: 6.0, 100: 4.5}
    assert trials["failed"].state == TrialState.FAIL


def test_no_pickle_holds_the_database_url(tmp_path, space):
    storage = StudyStorage(url=f"sqlite:///{tmp_path / 'secret-name.db'}", study_name="exp")
    s = StudySearch(space, seed=0, storage=storage, max_epochs=MAX_EPOCHS)
    s.suggest("a")
    s.save(str(tmp_path / "searcher.pkl"))
    for blob in (pickle.dumps(s), (tmp_path / "searcher.pkl").read_bytes()):
        assert b"secret-name" not in blob


def test_a_restored_search_goes_on_in_the_same_study(tmp_path, space):
    storage = storage_at(tmp_path)
    s = StudySearch(space, seed=0, storage=storage, max_epochs=MAX_EPOCHS)
    s.suggest("a")
    finish(s, "a", 5.0, 100)
    s.suggest("b")
    report(s, "b", 6.0, 20)
    s.save(str(tmp_path / "state.pkl"))
    # What Tuner.restore does: unpickle the searcher from tuner.pkl, then restore its state.
    again = pickle.loads(pickle.dumps(s))
    again.use_storage(storage)
    again.restore(str(tmp_path / "state.pkl"))
    report(again, "b", 6.0, 20)  # a restarted trial reports an epoch again
    finish(again, "b", 3.0, 100)
    again.suggest("c")
    trials = {t.user_attrs[TUNE_TRIAL_ATTR]: t for t in load(storage).trials}
    assert sorted(trials) == ["a", "b", "c"]
    assert trials["b"].state == TrialState.COMPLETE and trials["b"].intermediate_values == {20: 6.0, 100: 3.0}
    assert trials["c"].state == TrialState.RUNNING


def test_a_killed_driver_leaves_no_orphan_or_double_tell(tmp_path, space):
    """Killed after Optuna's ask of 'late' but before Tune saved its state, and after
    telling 'done' though the saved state still has it running."""
    storage = storage_at(tmp_path)
    s = StudySearch(space, seed=0, storage=storage, max_epochs=MAX_EPOCHS)
    s.suggest("done")
    report(s, "done", 6.0, 20)
    s.save(str(tmp_path / "state.pkl"))  # Tune's last save before the kill
    finish(s, "done", 4.0, 100)
    s.suggest("late")  # asked; Tune never recorded the trial
    del s

    again = pickle.loads(pickle.dumps(StudySearch(space, seed=0, storage=storage, max_epochs=MAX_EPOCHS)))
    again.use_storage(storage)
    again.restore(str(tmp_path / "state.pkl"))
    report(again, "done", 5.0, 80)  # Tune resumes "done" from its checkpoint...
    finish(again, "done", 4.0, 100)  # ...and tells it again: the study already has it
    trials = {t.user_attrs[TUNE_TRIAL_ATTR]: t for t in load(storage).trials}
    assert trials["done"].state == TrialState.COMPLETE and trials["done"].value == 4.0
    assert trials["late"].state == TrialState.FAIL and trials["late"].user_attrs[ORPHAN_ATTR]
    assert not [t for t in load(storage).trials if t.state == TrialState.RUNNING]


def test_a_locked_database_delays_a_tell_without_losing_it(tmp_path, space, monkeypatch):
    monkeypatch.setattr(study_module, "LOCK_WAIT_S", 0.2)
    monkeypatch.setattr(searcher_module, "WRITE_ATTEMPTS", 2)
    storage = storage_at(tmp_path)
    s = StudySearch(space, seed=0, storage=storage, max_epochs=MAX_EPOCHS)
    s.suggest("a")
    s.suggest("b")
    holder = sqlite3.connect(tmp_path / "optuna.db")
    holder.execute("BEGIN EXCLUSIVE")  # another writer (a dashboard, a script) holds the lock
    try:
        finish(s, "a", 5.0, 100)  # retried, then kept for later: the driver goes on
        report(s, "b", 6.5, 20)  # an intermediate value is left out, not an error
        assert s.suggest("c") is None  # no suggestion for now; Tune asks again later
    finally:
        holder.rollback()
        holder.close()
    assert {t.user_attrs[TUNE_TRIAL_ATTR]: t.state for t in load(storage).trials}["a"] == TrialState.RUNNING
    finish(s, "b", 6.0, 100)  # the next event makes the pending tell too
    states = {t.user_attrs[TUNE_TRIAL_ATTR]: (t.state, t.value) for t in load(storage).trials}
    assert states == {"a": (TrialState.COMPLETE, 5.0), "b": (TrialState.COMPLETE, 6.0)}
    assert set(s.suggest("c")) == {"lookahead", "lr"}  # asked again once the lock is gone


def _simulated_search(searcher, *, trials: int, seed: int) -> list[int]:
    """A search where lookahead 10 looks best early (ASHA runs it to epoch 20 only, at
    about 40 violations) and lookahead 100 is best at full budget (about 50 at epoch 100,
    70 at epoch 20): the lookaheads the searcher suggests, in order."""
    rng = random.Random(seed)
    chosen = []
    for i in range(trials):
        tid = f"t{i}"
        config = searcher.suggest(tid)
        chosen.append(config["lookahead"])
        if config["lookahead"] == 10:
            finish(searcher, tid, 40 + rng.gauss(0, 3), 20)
        else:
            report(searcher, tid, 70 + rng.gauss(0, 3), 20)
            finish(searcher, tid, 50 + rng.gauss(0, 3), 100)
    return chosen


def test_tpe_follows_full_budget_results_once_stops_are_pruned(tmp_path, space, capsys):
    """The small experiment of docs/search.md: the same simulated search, told as Ray's
    OptunaSearch tells it (every stop COMPLETE) and as StudySearch does (PRUNED)."""
    counts = {}
    for label in ("COMPLETE", "PRUNED"):
        sampler = optuna.samplers.TPESampler(seed=0, constant_liar=True)
        if label == "COMPLETE":
            searcher = OptunaSearch(space=space.suggest, metric=METRIC, mode=MODE, sampler=sampler)
        else:
            searcher = StudySearch(
                space, seed=0, storage=storage_at(tmp_path, "pruned"), max_epochs=MAX_EPOCHS
            )
        chosen = _simulated_search(searcher, trials=40, seed=1)
        counts[label] = chosen[10:].count(100)  # after TPE's 10 random start-up trials
    with capsys.disabled():
        print(
            f"\nlookahead 100 among TPE's 30 guided suggestions: stops told COMPLETE {counts['COMPLETE']}, "
            f"PRUNED {counts['PRUNED']}"
        )
    assert counts["PRUNED"] >= 20 > counts["COMPLETE"] + 5, counts
