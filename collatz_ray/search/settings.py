"""An experiment's settings and where its parts lie in storage.

    <storage>/<experiment>/
        collatz_search.json    SearchSettings: what `--resume` needs to rebuild the search
        space.yaml             the search space file as it was when the search started
        optuna.db              the Optuna study (unless --optuna-storage put it elsewhere)
        experiment_state-*.json, searcher-state-*.pkl, tuner.pkl   Ray Tune's own state
        collatz_trial_<id>/    one Tune trial: params.json, result.json, train_config.json,
                               TensorBoard's events.out.tfevents.*, checkpoint_<n>/ (the
                               newest two, each with the trial's reports up to it)
        _train/<id>/           in experiments of collatz-ray before 0.3 only: the Ray Train
                               run inside that trial and its checkpoints
        counterexamples.jsonl  the counterexample bank: what mining in the trials and
                               `verify --bank` found (trainer/bank.py)
        mlflow.db, wandb/      --track mlflow (without a URI) and --track wandb (offline)

Plain data and paths only, so the results reader can use it without Ray.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collatz_ray._atomic import write_atomically
from collatz_ray._bounded import MAX_JSON_BYTES, MAX_STATE_BYTES, Unreadable, loads, read_json
from collatz_ray.errors import UsageError
from collatz_ray.search.storage import is_remote
from collatz_ray.trainer.bank import BANK_FILE

if TYPE_CHECKING:
    from collatz_ray.search.replication import ReplicatePlan
    from collatz_ray.search.spaces import SearchSpace
    from collatz_ray.search.study import StudyStorage
    from collatz_ray.search.tracking import Tracker

SETTINGS_FILE = "collatz_search.json"
#: A copy of the space file, so a resume never depends on the file where it came from.
SPACE_COPY = "space.yaml"
#: Where the trials of experiments made before 0.3 (a Ray Train worker group per trial)
#: kept their checkpoints; results still read them there.
TRAIN_DIR = "_train"
TRIAL_PREFIX = "collatz_trial_"
#: The trainer's full config, written into each trial folder by the trial itself.
TRIAL_CONFIG_FILE = "train_config.json"


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
    #: The Optuna study's database; None for an experiment from before studies were
    #: recorded (and in pickles of such experiments).
    study: StudyStorage | None = None
    #: A replication's configurations, seeds and source (search/replication.py); None for a search.
    replicate: ReplicatePlan | None = None
    #: MLflow and W&B, as --track asked (collatz_ray/search/tracking.py).
    track: tuple[Tracker, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "space_path": str(self.space.path),
            "space_name": self.space.name,
            "objective": self.space.objective,
            "budget": dataclasses.asdict(self.space.budget),
            "storage": self.storage,
            "experiment": self.experiment,
            "cpus_per_trial": self.cpus_per_trial,
            "gpus_per_trial": self.gpus_per_trial,
            "seed": self.seed,
            "max_concurrent": self.max_concurrent,
            "eval_csv": self.eval_csv,
            "start_timeout_s": self.start_timeout_s,
            **({"study": self.study.to_json()} if self.study is not None else {}),
            **({"replicate": self.replicate.to_json()} if self.replicate else {}),
            "track": [str(tracker) for tracker in self.track],
        }

    @property
    def path(self) -> str:
        """The experiment directory (or URI)."""
        return join(self.storage, self.experiment)

    @property
    def bank(self) -> str | None:
        """The experiment's counterexample bank file; None on remote storage (s3://...),
        where a file cannot be appended to."""
        if is_remote(self.storage):
            return None
        return join(self.storage, self.experiment, BANK_FILE)


def join(storage: str, *parts: str) -> str:
    """`storage`/parts, for a local directory or a URI such as s3://bucket/prefix."""
    if is_remote(storage):
        return "/".join([storage.rstrip("/"), *parts])
    return str(Path(storage).joinpath(*parts))


def experiment_exists(storage: str, name: str) -> bool:
    """A non-empty local experiment directory (remote storage: Ray's restore check is
    the only probe, so never)."""
    if is_remote(storage):
        return False
    path = Path(storage) / name
    return path.is_dir() and any(path.iterdir())


def experiment_lock(storage: str, name: str) -> contextlib.AbstractContextManager[None]:
    """One command per experiment at a time: a lock beside it, held until the command
    ends (none on remote storage, where only Ray's own files coordinate)."""
    from collatz_ray._lock import hold_lock

    if is_remote(storage):
        return contextlib.nullcontext()
    return hold_lock(Path(storage) / f".{name}.lock", what=f"experiment {name}")


def trial_dirname(trial: Any) -> str:
    """Short, stable trial folder names (Ray's default embeds every parameter)."""
    return f"{TRIAL_PREFIX}{trial.trial_id}"


def known_trial_ids(experiment_dir: str | Path) -> set[str]:
    """The Tune trials a local experiment knows of: its trial folders, and the trials of
    its newest Tune state (those created but not started have no folder yet)."""
    path = Path(experiment_dir)
    known = {d.name.removeprefix(TRIAL_PREFIX) for d in path.glob(f"{TRIAL_PREFIX}*") if d.is_dir()}
    states = sorted(path.glob("experiment_state-*.json"))  # named by time: the newest last
    try:
        for trial_json, _runtime in read_json(states[-1], limit=MAX_STATE_BYTES)["trial_data"]:
            known.add(str(loads(trial_json)["trial_id"]))
    except (IndexError, OSError, ValueError, KeyError, TypeError):
        pass  # no state or a damaged one: the folders are what is known
    return known


def save_settings(settings: SearchSettings) -> None:
    if is_remote(settings.storage):
        return  # remote storage: Ray keeps tuner.pkl there; resume needs the same flags
    path = Path(settings.path)
    path.mkdir(parents=True, exist_ok=True)
    # Each written whole or not at all: a driver killed mid-write leaves the old file.
    write_atomically(path / SPACE_COPY, Path(settings.space.path).read_bytes(), durable=True)
    write_atomically(path / SETTINGS_FILE, json.dumps(settings.to_json(), indent=1), durable=True)


#: Keys of collatz_search.json a resume relies on, with the type each must have.
_SAVED_TYPES: dict[str, type | tuple[type, ...]] = {
    "space_name": str,
    "budget": dict,
    "seed": int,
    "cpus_per_trial": (int, float),
    "gpus_per_trial": (int, float),
}


def load_settings_json(storage: str, experiment: str) -> dict[str, Any] | None:
    """An experiment's saved settings, None if it has none; a damaged file is one line."""
    path = Path(join(storage, experiment)) / SETTINGS_FILE
    try:
        saved = read_json(path, limit=MAX_JSON_BYTES)
    except FileNotFoundError:
        return None
    except Unreadable as err:
        raise UsageError(str(err)) from None
    except ValueError:
        saved = None
    if not isinstance(saved, dict):
        raise UsageError(
            f"{path}: not a collatz-ray settings file (damaged or truncated); "
            "the experiment's trials are untouched"
        )
    for key, kind in _SAVED_TYPES.items():
        if key in saved and not isinstance(saved[key], kind):
            raise UsageError(
                f"{path}: {key}: expected {getattr(kind, '__name__', 'a number')}, "
                f"got {str(saved[key])[:60]!r}"
            )
    return saved


def experiment_space(saved: dict[str, Any], experiment_dir: Path) -> SearchSpace:
    """The space an experiment was started with: its own copy, else the file it named,
    else the shipped space of that name (an experiment from before copies were kept,
    whose checkout is gone). Shrunk again if the experiment ran at a preset's scale
    (its name ends in -smoke or -laptop)."""
    from collatz_ray.search.spaces import PRESETS, available_spaces, load_space

    name = str(saved.get("space_name", ""))
    preset = next((p for p in PRESETS if name.endswith(f"-{p}")), None)
    base_name = name.removesuffix(f"-{preset}") if preset else name
    copy = experiment_dir / SPACE_COPY
    if copy.is_file():
        space = load_space(copy)
    elif saved.get("space_path") and Path(saved["space_path"]).is_file():
        space = load_space(saved["space_path"])
    elif base_name in available_spaces():
        space = load_space(base_name)
    else:
        raise UsageError(
            f"{experiment_dir / SETTINGS_FILE}: space_path {saved.get('space_path')} is gone "
            f"and no shipped space is named {base_name!r}; pass --space with the "
            "experiment's space file"
        )
    space = dataclasses.replace(space, name=base_name or space.name)
    return space.scaled(preset)
