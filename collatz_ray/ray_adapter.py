"""Everything that talks to Ray. Ray's API churn touches this file and no other.

Shape of a search (Ray 2.60, Train V2; see ../shared/RAY_NOTES.md):

    Tune driver ── Tuner(collatz_trial, OptunaSearch (TPE), ASHAScheduler)
        └─ one Tune function trial per config ── builds a TorchTrainer and fit()s it
              └─ one Train worker ── collatz_ray.training.train(...), reporting every
                 evaluation through ray.train.report with its checkpoint

A TorchTrainer can no longer be handed to tune.Tuner, so the Tune trial builds it and
passes TuneReportCallback, which forwards the worker's metrics to Tune. The inner Train
run is named after the Tune trial id: a trial restarted after a crash finds its own
checkpoints there and continues instead of starting over.

The metric Tune optimises is `objective`: the held-out trajectory violations, with ties
broken by the population's 5th-percentile margin (see `objective`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Quiet, safe defaults, set before Ray is imported: token auth on every cluster we start
# or join, no Train V2 migration chatter, no experiment-sync warnings on slow disks.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# The legacy reporter prints a compact status table with the columns we choose; the
# new output engine prints every metric of every trial.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import ray  # noqa: E402
from ray import train as ray_train  # noqa: E402
from ray import tune  # noqa: E402
from ray.train.backend import Backend  # noqa: E402
from ray.train.torch import TorchConfig, TorchTrainer  # noqa: E402
from ray.tune.integration.ray_train import TuneReportCallback  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402
from ray.tune.search.optuna import OptunaSearch  # noqa: E402

from collatz_ray.config import TrainConfig  # noqa: E402
from collatz_ray.errors import UsageError  # noqa: E402
from collatz_ray.spaces import SearchSpace  # noqa: E402

METRIC = "objective"
MODE = "min"
TIME_ATTR = "epoch"
#: CPU reserved by each Tune trial actor, out of --cpus-per-trial; the Train worker that
#: does the work gets the rest, so N CPUs fit N trials of one CPU.
TRIAL_ACTOR_CPU = 0.1
#: The live status table's metric columns.
STATUS_COLUMNS = {"epoch": "epoch", "traj_total_violations": "violations", "pass_rate": "pass%",
                  "growth_weighted_pass_rate": "grwtd%", "loss": "loss", METRIC: METRIC}
#: Custom resource on the head node of cluster/*.yaml: trial actors stay off spot nodes.
DRIVER_RESOURCE = "tune_driver"
DRIVER_RESOURCE_SHARE = 0.001
SETTINGS_FILE = "collatz_search.json"


def objective(metrics: dict[str, Any]) -> float:
    """Violations + a tie-break in (0, 1) that falls as the 5th-percentile population
    margin rises: a trial with fewer violations always ranks first, and among equal
    counts the one whose weak tail of margins is healthier wins."""
    tail = metrics.get("margin_5pct")
    tail = 0.0 if tail is None or not math.isfinite(tail) else tail
    return metrics["traj_total_violations"] + 0.5 - math.atan(tail) / math.pi


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """What a trial needs besides its sampled parameters; saved with the experiment so
    `--resume` rebuilds the identical trainable."""

    space: SearchSpace
    storage: str
    experiment: str
    cpus_per_trial: float
    gpus_per_trial: float
    seed: int
    max_concurrent: int
    eval_csv: str | None = None
    start_timeout_s: float = 120.0

    def to_json(self) -> dict[str, Any]:
        return {"space_path": str(self.space.path), "space_name": self.space.name,
                "budget": dataclasses.asdict(self.space.budget),
                "storage": self.storage, "experiment": self.experiment,
                "cpus_per_trial": self.cpus_per_trial, "gpus_per_trial": self.gpus_per_trial,
                "seed": self.seed, "max_concurrent": self.max_concurrent,
                "eval_csv": self.eval_csv, "start_timeout_s": self.start_timeout_s}


# -- cluster ---------------------------------------------------------------------------
def connect(address: str | None, *, num_cpus: int | None = None) -> dict[str, float]:
    """Join `address` (a cluster from `ray start --head`) or start an embedded local Ray.

    The embedded Ray binds its node and dashboard to 127.0.0.1 and runs with token
    authentication. The dashboard stays on: its PlacementGroupCleaner is what frees the
    resources of trials Tune stops (Ray issue 54305). That cleaner finds the State API
    by auto-detection, which fails when a second Ray runs on the same machine, and the
    search then hangs on leaked placement groups; so every actor of the job is told the
    address explicitly. Returns the cluster's resources.
    """
    if ray.is_initialized():
        return ray.cluster_resources()
    # Worker stdout (Train's per-report lines) stays in the session logs; Tune still
    # prints trial errors, and error.txt keeps each trial's traceback.
    common = dict(logging_level="WARNING", log_to_driver=False, configure_logging=True)
    if address is None:
        _match_driver_auth_mode()
        port = _free_local_port()
        with _single_machine_mode():
            # address="local": a new instance even when `ray start` left a cluster on
            # this machine (ray.init() with no address would silently join that one).
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=True,
                     dashboard_host="127.0.0.1", dashboard_port=port, _node_ip_address="127.0.0.1",
                     runtime_env={"env_vars": {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}},
                     **common)
    else:
        from ray._private.services import canonicalize_bootstrap_address_or_die

        try:
            resolved = canonicalize_bootstrap_address_or_die(address)
        except ConnectionError as err:
            raise UsageError(f"--address {address}: {err}") from None
        ray.init(address=resolved, runtime_env={"env_vars": {"RAY_ADDRESS": resolved}}, **common)
    return ray.cluster_resources()


@contextlib.contextmanager
def _single_machine_mode():
    """Keep the embedded node on 127.0.0.1. ray.init replaces _node_ip_address="127.0.0.1"
    with the machine's routable IP (services.resolve_ip_for_localhost), so GCS, raylet,
    workers, agents and metrics servers would listen there, reachable from other
    machines. With Ray's single-machine switch off (what it does on macOS/Windows) the
    node IP stays 127.0.0.1 and they all listen on loopback. The environment variable
    reaches the processes ray.init starts; both are restored afterwards so a later
    connect to a real cluster from this process resolves its IP normally."""
    from ray._private import ray_constants

    saved_env = os.environ.get(_SINGLE_MACHINE_ENV)
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_SINGLE_MACHINE_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(_SINGLE_MACHINE_ENV, None)
        else:
            os.environ[_SINGLE_MACHINE_ENV] = saved_env


_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _match_driver_auth_mode() -> None:
    """Ray reads RAY_AUTH_MODE once per process. If Ray was imported and configured
    before this module set token auth, the processes ray.init starts would demand a
    token this driver does not send; start them in the driver's mode and say so."""
    from ray._raylet import AuthenticationMode, get_authentication_mode

    if get_authentication_mode() == AuthenticationMode.TOKEN:
        return
    os.environ["RAY_AUTH_MODE"] = "disabled"
    print("collatz_ray: warning: Ray was configured before collatz_ray.ray_adapter was "
          "imported, so this local Ray runs without token authentication; set "
          "RAY_AUTH_MODE=token in the environment to keep it", file=sys.stderr)


def _free_local_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive_node_count() -> int:
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()


def fitting_concurrency(resources: dict[str, float], *, cpus_per_trial: float,
                        gpus_per_trial: float) -> int:
    """How many trials fit at once: Tune cannot see the Train workers' placement groups,
    so the limit comes from the cluster's totals (what Ray's docs advise)."""
    limits = [math.floor((resources.get("CPU", 0) + 1e-9) / cpus_per_trial)]
    if gpus_per_trial > 0:
        limits.append(math.floor((resources.get("GPU", 0) + 1e-9) / gpus_per_trial))
    return max(1, min(limits))


# -- the Train worker ------------------------------------------------------------------
def _train_worker(loop_config: dict[str, Any]) -> None:
    """Runs in the Ray Train worker: the plain trainer plus a report hook."""
    import torch

    from collatz_ray.training import train

    torch.set_num_threads(max(1, int(loop_config["threads"])))
    config = TrainConfig.from_dict(loop_config["train"], source="trial config")
    with tempfile.TemporaryDirectory(prefix="collatz-trial-") as tmp:
        resume_from = None
        checkpoint = ray_train.get_checkpoint()
        if checkpoint is not None:
            resume_from = Path(checkpoint.to_directory(os.path.join(tmp, "resume")))

        node_id = ray.get_runtime_context().get_node_id()

        def report(metrics: dict[str, Any], checkpoint_dir: Path) -> None:
            metrics = {**metrics, METRIC: objective(metrics), "node_id": node_id}
            ray_train.report(metrics, checkpoint=ray_train.Checkpoint.from_directory(str(checkpoint_dir)))

        train(config, run_dir=Path(tmp) / "run", resume_from=resume_from,
              on_evaluation=report, verbose=False)


# -- the Tune trial ----------------------------------------------------------------------
def collatz_trial(params: dict[str, Any], settings: SearchSettings) -> None:
    """A Tune function trainable: one TorchTrainer run of the sampled config."""
    # Read by the Train controller this fit() starts (it runs in this process's env):
    # workers that cannot be placed in time fail the trial instead of waiting forever.
    os.environ["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] = str(settings.start_timeout_s)
    context = tune.get_context()
    trial_id = context.get_trial_id()
    gpus = settings.gpus_per_trial
    config = settings.space.trial_config(params)
    config = config.replace(device="cuda" if gpus > 0 else "cpu",
                            **({"eval_csv": settings.eval_csv} if settings.eval_csv else {}))
    trial_dir = context.get_trial_dir()
    if trial_dir:
        Path(trial_dir).mkdir(parents=True, exist_ok=True)
        (Path(trial_dir) / "train_config.json").write_text(json.dumps(config.to_dict(), indent=1))
    worker_resources = {"CPU": settings.cpus_per_trial - TRIAL_ACTOR_CPU}
    if gpus > 0:
        worker_resources["GPU"] = gpus
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"train": config.to_dict(),
                           "threads": max(1, round(settings.cpus_per_trial))},
        scaling_config=ray_train.ScalingConfig(num_workers=1, use_gpu=gpus > 0,
                                               resources_per_worker=worker_resources),
        torch_config=SingleWorkerTorchConfig(),
        run_config=ray_train.RunConfig(
            name=trial_id,
            storage_path=_join(settings.storage, settings.experiment, "_train"),
            callbacks=[TuneReportCallback()],
            checkpoint_config=ray_train.CheckpointConfig(num_to_keep=2),
            # A killed worker restarts from its last checkpoint; a trial whose workers
            # cannot start (no resources) fails instead of retrying forever.
            failure_config=ray_train.FailureConfig(max_failures=2, controller_failure_limit=1),
            logging_config=ray_train.LoggingConfig(log_level="WARNING"),
        ),
    )
    try:
        trainer.fit()
    except ray_train.TrainingFailedError as err:
        # Ray's message is a page of nested tracebacks; error.txt and the summaries
        # should say in one line why the trial failed.
        raise TrialFailed(failure_reason(err)) from None


class _NoProcessGroup(Backend):
    """Ray Train's torch backend without torch.distributed: nothing to set up."""


@dataclasses.dataclass
class SingleWorkerTorchConfig(TorchConfig):
    """A trial has one worker and the trainer never calls torch.distributed, so no
    process group is made. Torch's default one would start a c10d TCPStore that listens
    on all interfaces, without authentication, for the whole trial (it takes no bind
    address); skipping it keeps every socket of the embedded Ray on loopback and saves
    the group's setup time. The default-CUDA-device context of TorchConfig is kept."""

    @property
    def backend_cls(self):
        return _NoProcessGroup


class TrialFailed(RuntimeError):
    """A trial's training failed (diverged, crashed past its retries, never started)."""


def failure_reason(err: BaseException) -> str:
    """The most specific line of a Train failure: the trainer's own exception if any."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for name in ("TrainingDiverged", "UsageError"):
        for line in reversed(lines):
            if name + ":" in line:
                return line[line.index(name):][:500]
    errors = [line for line in lines if "Error:" in line or "Exception:" in line]
    return (errors[-1] if errors else lines[0] if lines else type(err).__name__)[:500]


def _join(storage: str, *parts: str) -> str:
    if "://" in storage:
        return "/".join([storage.rstrip("/"), *parts])
    return str(Path(storage).joinpath(*parts))


def trainable(settings: SearchSettings):
    """The Tune trainable with its settings and resources attached. It keeps the name
    `collatz_trial`, which Tuner.restore needs to find it again."""
    resources: dict[str, float] = {"CPU": TRIAL_ACTOR_CPU}
    if ray.is_initialized() and ray.cluster_resources().get(DRIVER_RESOURCE, 0) > 0:
        resources[DRIVER_RESOURCE] = DRIVER_RESOURCE_SHARE
    return tune.with_resources(tune.with_parameters(collatz_trial, settings=settings), resources)


# -- the search ------------------------------------------------------------------------
def trial_dirname(trial) -> str:
    """Short, stable trial folder names (Ray's default embeds every parameter)."""
    return f"collatz_trial_{trial.trial_id}"


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
                                        else StorageGuard(experiment_path(settings))),
                                  callbacks=[KeepTrialHistory(), ReasonFirst()],
                                  progress_reporter=tune.CLIReporter(
                                      metric_columns=STATUS_COLUMNS,
                                      # Conditional parameters are missing from some
                                      # trials' configs, which the reporter cannot show.
                                      parameter_columns=[p.name for p in space.parameters
                                                         if not p.when],
                                      max_report_frequency=30, sort_by_metric=True,
                                      max_column_length=14),
                                  verbose=verbose),
    )


def experiment_path(settings: SearchSettings) -> str:
    return _join(settings.storage, settings.experiment)


def save_settings(settings: SearchSettings) -> None:
    if "://" in settings.storage:
        return  # remote storage: Ray keeps tuner.pkl there; resume needs the same flags
    path = Path(experiment_path(settings))
    path.mkdir(parents=True, exist_ok=True)
    (path / SETTINGS_FILE).write_text(json.dumps(settings.to_json(), indent=1))


def load_settings_json(storage: str, experiment: str) -> dict[str, Any] | None:
    path = Path(_join(storage, experiment)) / SETTINGS_FILE
    return json.loads(path.read_text()) if path.exists() else None


def run(settings: SearchSettings, *, num_samples: int, resume: bool = False):
    """Run (or resume) the search and return Ray's ResultGrid. Raises StorageFailed,
    with one line, when the experiment's storage stopped taking writes."""
    path = experiment_path(settings)
    try:
        if resume:
            tuner = tune.Tuner.restore(path, trainable=trainable(settings), resume_errored=True)
        else:
            save_settings(settings)
            tuner = build_tuner(settings, num_samples=num_samples)
        return tuner.fit()
    except StorageFailed as err:
        raise StorageFailed(_storage_failure_line(settings, str(err))) from None
    except Exception:
        # Whatever Ray raised (a truncated error.pkl, a failed write), a storage that no
        # longer takes writes is the reason to report.
        problem = storage_write_problem(path)
        if problem is None:
            raise
        raise StorageFailed(_storage_failure_line(settings, problem)) from None


class StorageFailed(RuntimeError):
    """The experiment's storage stopped taking writes (full, read-only, gone)."""


def storage_write_problem(path: str) -> str | None:
    """Why `path` (a local experiment directory) cannot take a small write, or None."""
    if "://" in path:
        return None  # remote storage: Ray's pyarrow filesystem reports its own errors
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".storage-probe-") as probe:
            probe.write(b"\0" * _PROBE_BYTES)
            probe.flush()
    except OSError as err:
        return err.strerror or str(err)
    return None


_PROBE_BYTES = 64 * 1024


def _storage_failure_line(settings: SearchSettings, problem: str) -> str:
    return (f"--storage {settings.storage}: cannot write to experiment {settings.experiment} "
            f"({problem}); the search stopped. Trials already written are kept in "
            f"{experiment_path(settings)}")


class KeepTrialHistory(tune.Callback):
    """A trial restarted by --resume keeps the reports it made before the crash.

    Tune copies a trial's result.json and progress.csv back from storage on restore only
    when the trial saved a Tune checkpoint. Ours keep their checkpoints in Ray Train, so
    the restarted trial would begin these files afresh in the new session's staging
    directory and the next sync would overwrite the stored history with the reports
    after the crash alone. Copy them back first (whole lines only); the trial's loggers
    then append to them, and training itself resumes from the Train checkpoint."""

    FILES = ("result.json", "progress.csv")

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if trial.checkpoint is not None or not trial.local_path:
            return  # Tune restores these itself
        local, storage = Path(trial.local_path), trial.storage
        for name in self.FILES:
            target = local / name
            if target.exists():
                continue  # this session already writes it
            try:
                with storage.storage_filesystem.open_input_stream(
                        f"{storage.trial_fs_path}/{name}") as stream:
                    data = stream.read()
            except OSError:  # FileNotFoundError: a new trial
                continue
            data = data[:data.rfind(b"\n") + 1]
            if data:
                local.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)


class ReasonFirst(tune.Callback):
    """Puts a failed trial's one-line reason (e.g. `TrainingDiverged: loss became nan
    at epoch 2 ...`) at the top of its error.txt. Tune writes a "Failure # N" line and a
    page of remote traceback, and the reason only at the very end."""

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        try:
            path = Path(trial.error_file or "")
            text = path.read_text()
        except (OSError, ValueError):
            return
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        marker = f"{TrialFailed.__name__}: "
        reasons = [line[line.index(marker) + len(marker):] for line in lines if marker in line]
        reason = reasons[-1] if reasons else (lines[-1] if lines else "")
        if reason:
            try:
                path.write_text(f"{reason[:500]}\n{text}")
            except OSError:
                pass


class StorageGuard(tune.Stopper):
    """Ends the search as soon as the experiment's storage stops taking writes.

    Every remaining trial would fail the same way, one after the other, and Ray's
    periodic sync rewrites each result file in place (truncate, then write), so every
    further sync onto a full disk can cut files that were complete. Raising here ends
    Tune's loop without its final sync (tune.run syncs only after a clean loop)."""

    def __init__(self, path: str, every_s: float = 1.0) -> None:
        self.path, self.every_s = path, every_s
        self._last = 0.0

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            problem = storage_write_problem(self.path)
            if problem is not None:
                raise StorageFailed(problem)
        return False


def can_restore(settings: SearchSettings) -> bool:
    return tune.Tuner.can_restore(experiment_path(settings))


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




# -- overhead probe (collatz_ray.bench_search) ---------------------------------------------
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
