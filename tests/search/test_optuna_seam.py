"""Each private part of Optuna that collatz_ray relies on (collatz_ray/search/_optuna_private.py)
is there in the installed Optuna and behaves as we use it. A failure names the item: check
docs/ray-notes.md ("The private seam") for what breaks without it before moving Optuna's pin."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from collatz_ray.search._optuna_private import storage_trial_id, trial_handle


def test_storage_trial_id_and_trial_handle():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    study.ask()  # so that a trial's storage id and its number could differ in meaning
    asked = study.ask()
    try:
        live_id = storage_trial_id(asked)
        frozen_id = storage_trial_id(study.get_trials(deepcopy=False)[-1])
    except AttributeError as err:
        pytest.fail(f"Optuna {optuna.__version__} lacks Trial/FrozenTrial._trial_id ({err})")
    assert live_id == frozen_id
    # The storage API takes that id: what StudySearch does to an orphaned trial.
    storage.set_trial_user_attr(frozen_id, "orphaned", True)
    try:
        again = trial_handle(study, live_id)
    except TypeError as err:
        pytest.fail(f"Optuna {optuna.__version__} lacks optuna.Trial(study, trial_id) ({err})")
    again.report(0.5, 10)
    study.tell(again, 0.25)
    finished = study.get_trials(deepcopy=False)[-1]
    assert finished.user_attrs == {"orphaned": True}
    assert finished.intermediate_values == {10: 0.5}
    assert finished.state == TrialState.COMPLETE and finished.value == 0.25
