"""Every private part of Ray that collatz_ray relies on, and nothing else.

Ray may change any of these in a minor release without notice, so they are kept here,
each with why we need it, and tests/search/ray/test_seam.py checks each against the
installed Ray (failing with the item's name). pyproject.toml pins Ray to the minor
versions the suite has passed on; docs/ray-notes.md ("The private seam") lists what
breaks without each item. Heavy or optional imports (wandb, mlflow) stay inside the
functions that need them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import cloudpickle

from collatz_ray._atomic import write_atomically

if TYPE_CHECKING:
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.air.integrations.wandb import WandbLoggerCallback
    from ray.tune import Tuner
    from ray.tune.experiment import Trial
    from ray.tune.search.optuna import OptunaSearch

# -- Tune: a restored Tuner's searcher ---------------------------------------------------


def restored_searcher(tuner: Tuner) -> Any:
    """The searcher a restored Tuner restores its state into. Why: Tuner.restore takes no
    searcher and offers no public handle on the one it unpickles, and StudySearch keeps
    its database URL out of pickles, so it must be handed the study again."""
    assert tuner._local_tuner is not None  # None only under Ray Client, which we never use
    return tuner._local_tuner._tune_config.search_alg


# -- Tune: the search generator's saved state --------------------------------------------

#: The search generator's state beside tuner.pkl: a cloudpickled dict despite its name,
#: {"total_samples", "finished", "experiment", ...} (SearchGenerator.get_state).
GENERATOR_STATE_GLOB = "search_gen_state-*.json"


def generator_state_files(experiment_path: str | Path) -> list[Path]:
    """The saved states, oldest first (names sort by time; Tune loads the newest)."""
    return sorted(Path(experiment_path).glob(GENERATOR_STATE_GLOB))


def read_generator_state(path: Path) -> dict[str, Any]:
    with open(path, "rb") as handle:
        state = cloudpickle.load(handle)
    if not isinstance(state, dict):
        raise ValueError(f"{path.name}: not a search generator state")
    return state


def write_generator_state(path: Path, state: dict[str, Any]) -> None:
    write_atomically(path, cloudpickle.dumps(state), durable=True)


def allow_more_trials(state: dict[str, Any], extra: int) -> None:
    """Let a finished search generator create `extra` trials more. Why: Tune has no way
    to extend a search; `tune --extend` raises the generator's sample count instead."""
    state["total_samples"] = int(state["total_samples"]) + extra
    state["finished"] = False


def retarget_generator_storage(state: dict[str, Any], *, storage_path: str, experiment: str) -> bool:
    """Point the saved experiment spec's storage at where the experiment now is; True if
    it changed. Why: Tune moves restored trials to a moved experiment, but new trials
    copy this spec's storage and would land in the old place (docs/ray-notes.md)."""
    storage = getattr(state.get("experiment"), "storage", None)
    if storage is None or (storage.storage_fs_path, storage.experiment_dir_name) == (
        storage_path,
        experiment,
    ):
        return False
    # In place: the experiment's spec holds the same object.
    storage.storage_fs_path = storage_path
    storage.experiment_dir_name = experiment
    return True


# -- Ray Tune's OptunaSearch, which StudySearch subclasses --------------------------------
# StudySearch reconnects the study after a restore, keys reports by epoch and settles
# what a killed driver left, all of which needs OptunaSearch's own state: its sampler, the
# study and its storage, the Optuna trial per Tune trial, and the trials already told.

#: OptunaSearch's attributes holding a live database connection (and the URL's password):
#: left out of every pickle of the searcher and reconnected on first use.
OPTUNA_SEARCH_CONNECTIONS = ("_storage", "_ot_study", "_ot_trials")


def searcher_sampler(search: OptunaSearch) -> Any:
    """The sampler OptunaSearch was built with: the reconnected study must use the same
    one (with its random state), or a resumed search would repeat suggestions."""
    return search._sampler


def searcher_study(search: OptunaSearch) -> Any:
    """The live study (None before it is connected)."""
    return search._ot_study


def attach_study(search: OptunaSearch, *, storage: Any, study: Any, trials: dict[str, Any]) -> None:
    """Hand OptunaSearch a (re)connected study: OptunaSearch.suggest and tell read the
    study and the Optuna trial of each Tune trial from these attributes."""
    search._storage, search._ot_study, search._ot_trials = storage, study, trials


def detach_study(search: OptunaSearch) -> None:
    """Forget the live study; the next event reconnects it."""
    search._ot_study = None


def searcher_storage(search: OptunaSearch) -> Any:
    """The study's storage: StudySearch fails orphaned trials through it directly."""
    return search._storage


def searcher_trials(search: OptunaSearch) -> dict[str, Any]:
    """Tune trial id -> its Optuna trial; StudySearch asks the study itself (retrying a
    locked database) and records the trial here for OptunaSearch.suggest to use."""
    return search._ot_trials


def searcher_finished(search: OptunaSearch) -> set[str]:
    """The Tune trials OptunaSearch has told the study about: never told twice."""
    return search._completed_trials


# -- Ray core: joining and starting clusters ----------------------------------------------


def canonical_address(address: str) -> str:
    """`--address` resolved as `ray start` and ray.init resolve it ("auto", a host
    without a port, the address file). Why: the resolved address goes into the trials'
    runtime environment, and the one-line error for a missing cluster needs it before
    ray.init, which would otherwise raise a long ConnectionError."""
    from ray._private.services import canonicalize_bootstrap_address_or_die

    return canonicalize_bootstrap_address_or_die(address)


def driver_uses_token_auth() -> bool:
    """Whether this process's Ray runs with token authentication. Why: Ray reads
    RAY_AUTH_MODE once per process; a mismatch with the cluster would let no trial
    start, and Ray offers no public way to ask."""
    # Ray's stubs of its compiled _raylet leave these out.
    from ray._raylet import AuthenticationMode, get_authentication_mode  # type: ignore[attr-defined]

    return get_authentication_mode() == AuthenticationMode.TOKEN


#: ray.init's private argument that fixes the node's IP: the embedded Ray stays on
#: loopback (with cluster mode off, below).
LOOPBACK_NODE: dict[str, Any] = {"_node_ip_address": "127.0.0.1"}


@contextlib.contextmanager
def cluster_mode_off() -> Iterator[None]:
    """Ray's single-machine switch off in this process while the block runs. Why:
    ray.init replaces _node_ip_address="127.0.0.1" by the machine's routable IP unless
    this switch is off (read once at import from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER, so
    the environment variable alone is too late for this process)."""
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


# -- Ray's tracker integrations ------------------------------------------------------------


def wandb_logging_actor_class() -> type:
    """Ray's W&B logging actor (a private class), for a subclass that waits until W&B has
    written the run out. Imports wandb."""
    from ray.air.integrations.wandb import _WandbLoggingActor

    return _WandbLoggingActor


def actor_wandb(actor: Any) -> Any:
    """The wandb module a logging actor logs through (its teardown flushes the run)."""
    return actor._wandb


def use_wandb_logging_actor(callback_class: type[WandbLoggerCallback], actor_class: type[Any]) -> None:
    """Make WandbLoggerCallback subclass `callback_class` start `actor_class` for each
    trial: the class attribute WandbLoggerCallback reads, with no public setter."""
    callback_class._logger_actor_cls = actor_class


def wandb_init_arguments(callback: WandbLoggerCallback) -> dict[str, Any]:
    """The wandb.init() arguments WandbLoggerCallback hands each trial's actor; updated
    per trial with this shell's WANDB_MODE and WANDB_DIR."""
    return callback.kwargs


def mlflow_run_id(callback: MLflowLoggerCallback, trial: Trial) -> str:
    """The MLflow run MLflowLoggerCallback opened for `trial`, which our batched
    logging writes to (Ray's logger sends each number on its own)."""
    return callback._trial_runs[trial]
