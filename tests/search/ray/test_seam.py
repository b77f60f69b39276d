"""Each private part of Ray that collatz_ray relies on (collatz_ray/search/ray/_ray_private.py)
is there in the installed Ray and behaves as we use it. A failure names the item: check
docs/ray-notes.md ("The private seam") for what breaks without it before moving Ray's pin.

Checked on real Ray objects, without starting Ray."""

from __future__ import annotations

import inspect

import pytest
import ray
from ray import tune

from collatz_ray.search.ray import _ray_private as ray_private


@pytest.fixture
def named(request):
    """Turns a missing private part into a failure that names it."""

    def fail(item: str, err: Exception) -> None:
        pytest.fail(
            f"Ray {ray.__version__} lacks {item} ({type(err).__name__}: {err}); see docs/ray-notes.md"
        )

    return fail


def _suggest(trial) -> None:
    trial.suggest_float("x", 0.0, 1.0)


def _never_called(config) -> None:
    raise AssertionError("no trial runs in these tests")


def optuna_search():
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(space=_suggest, metric="loss", mode="min")


def test_restored_tuner_searcher(named, tmp_path):
    searcher = optuna_search()
    tuner = tune.Tuner(
        _never_called,
        tune_config=tune.TuneConfig(search_alg=searcher),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="exp"),
    )
    try:
        found = ray_private.restored_searcher(tuner)
    except AttributeError as err:
        named("Tuner._local_tuner._tune_config.search_alg", err)
    assert found is searcher


def test_search_generator_state(named, tmp_path):
    from ray.tune.experiment import Experiment
    from ray.tune.search.search_generator import SearchGenerator

    from collatz_ray.search.ray.given import GivenConfigs

    generator = SearchGenerator(GivenConfigs([{"x": 1}, {"x": 2}]))
    generator.add_configurations(
        Experiment("exp", run=_never_called, storage_path=str(tmp_path), num_samples=2)
    )
    generator.save_to_dir(str(tmp_path), session_str="2026-01-01_00-00-00")
    files = ray_private.generator_state_files(tmp_path)
    if len(files) != 1:
        named(
            f"the search generator's state saved as {ray_private.GENERATOR_STATE_GLOB}",
            FileNotFoundError(files),
        )
    state = ray_private.read_generator_state(files[0])
    try:
        ray_private.allow_more_trials(state, 3)
        moved = ray_private.retarget_generator_storage(state, storage_path="/elsewhere", experiment="exp2")
    except (KeyError, TypeError) as err:
        named("the search generator state's total_samples and finished", err)
    if not moved:
        named("the search generator state's experiment.storage", AttributeError("no storage moved"))
    ray_private.write_generator_state(files[0], state)
    # Tune itself reads the changed state back: what a restore does with it.
    restored = SearchGenerator(GivenConfigs([]))
    restored.set_state(ray_private.read_generator_state(files[0]))
    assert restored.get_state()["total_samples"] == 5 and restored.get_state()["finished"] is False
    storage = restored.get_state()["experiment"].storage
    assert (storage.storage_fs_path, storage.experiment_dir_name) == ("/elsewhere", "exp2")


def test_optuna_search_internals(named):
    search = optuna_search()
    for name in (*ray_private.OPTUNA_SEARCH_CONNECTIONS, "_sampler", "_completed_trials"):
        if name not in vars(search):
            named(f"OptunaSearch.{name}", AttributeError(name))
    study = ray_private.searcher_study(search)
    assert isinstance(ray_private.searcher_trials(search), dict)
    assert isinstance(ray_private.searcher_finished(search), set)
    ray_private.searcher_sampler(search), ray_private.searcher_storage(search)
    # OptunaSearch.suggest takes the trial StudySearch asked for and recorded.
    asked = study.ask()
    ray_private.attach_study(search, storage=None, study=study, trials={"t1": asked})
    config = search.suggest("t1")
    assert config == {"x": asked.params["x"]}, "OptunaSearch.suggest no longer uses its _ot_trials"
    ray_private.detach_study(search)
    assert ray_private.searcher_study(search) is None


def test_cluster_internals(named):
    try:
        # (A loopback address would be resolved to this machine's IP.)
        assert ray_private.canonical_address("10.1.2.3:6379") == "10.1.2.3:6379"
    except (ImportError, AttributeError) as err:
        named("ray._private.services.canonicalize_bootstrap_address_or_die", err)
    try:
        assert isinstance(ray_private.driver_uses_token_auth(), bool)
    except (ImportError, AttributeError) as err:
        named("ray._raylet.get_authentication_mode, AuthenticationMode", err)
    # ray.init takes its private arguments from **kwargs (and refuses unknown ones).
    source = inspect.getsource(ray.init)
    for argument in ray_private.LOOPBACK_NODE:
        if f'kwargs.pop("{argument}"' not in source:
            named(f"ray.init({argument}=...)", TypeError(argument))


def test_cluster_mode_switch(named):
    from ray._private import ray_constants, services

    if not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        named("ray._private.ray_constants.ENABLE_RAY_CLUSTER", AttributeError("ENABLE_RAY_CLUSTER"))
    before = ray_constants.ENABLE_RAY_CLUSTER
    with ray_private.cluster_mode_off():
        assert ray_constants.ENABLE_RAY_CLUSTER is False
        if not ray.is_initialized():  # then Ray answers from the node it runs
            assert services.get_node_ip_address() == "127.0.0.1", "the switch no longer keeps Ray on loopback"
    assert ray_constants.ENABLE_RAY_CLUSTER == before


def test_wandb_integration_internals(named, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from ray.air.integrations.wandb import WandbLoggerCallback

    try:
        actor_class = ray_private.wandb_logging_actor_class()
    except ImportError as err:
        named("ray.air.integrations.wandb._WandbLoggingActor", err)
    monkeypatch.chdir(tmp_path)  # the actor changes into its log directory
    actor = actor_class(str(tmp_path), None, [], [])
    try:
        assert callable(ray_private.actor_wandb(actor).teardown)
    except AttributeError as err:
        named("_WandbLoggingActor._wandb (and wandb.teardown)", err)
    if "_logger_actor_cls" not in vars(WandbLoggerCallback):
        named("WandbLoggerCallback._logger_actor_cls", AttributeError("_logger_actor_cls"))
    callback = WandbLoggerCallback(project="p", resume="allow")
    try:
        assert ray_private.wandb_init_arguments(callback)["resume"] == "allow"
    except (AttributeError, KeyError) as err:
        named("WandbLoggerCallback.kwargs (wandb.init's arguments)", err)

    from collatz_ray.search.ray.wandb_tracker import EpochWandb, _RunWrittenOut

    assert EpochWandb._logger_actor_cls is _RunWrittenOut


def test_mlflow_integration_internals(named, tmp_path):
    pytest.importorskip("mlflow")
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    from collatz_ray.search.tracking import experiment_mlflow_uri

    callback = MLflowLoggerCallback(tracking_uri=experiment_mlflow_uri(tmp_path), experiment_name="exp")
    callback.setup()
    try:
        ray_private.mlflow_run_id(callback, "a trial never started")
    except KeyError:
        pass  # the runs by trial are there; this trial has none
    except AttributeError as err:
        named("MLflowLoggerCallback._trial_runs", err)
