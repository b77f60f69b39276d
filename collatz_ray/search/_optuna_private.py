"""Every private part of Optuna that collatz_ray relies on, and nothing else.

Optuna may change these without notice, so they are kept here, each with why we need
it, and tests/search/test_optuna_seam.py checks each against the installed Optuna
(failing with the item's name); pyproject.toml pins Optuna to the versions the suite has
passed on, and docs/ray-notes.md ("The private seam") lists what breaks without each.
No Ray here: this module belongs to the Ray-free search layer (results may use it too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna


def storage_trial_id(trial: optuna.trial.Trial | optuna.trial.FrozenTrial) -> int:
    """The id a study's storage knows a trial by (Trial or FrozenTrial). Why: the storage
    API (set_trial_user_attr, set_trial_state_values) takes it, `trial.number` is not it,
    and only the private `_trial_id` holds it. StudySearch records it so a restored
    search finds its trials again, and fails the orphans a killed driver left."""
    return trial._trial_id


def trial_handle(study: optuna.Study, trial_id: int) -> optuna.Trial:
    """A live Trial for a trial already in the study (Optuna documents the constructor as
    not meant for users). Why: a resumed search reports to and tells the trials it asked
    before the restart, which study.ask cannot return."""
    import optuna

    return optuna.Trial(study, trial_id)
