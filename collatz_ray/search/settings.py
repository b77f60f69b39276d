"""An experiment's settings and where its parts lie in storage.

    <storage>/<experiment>/
        collatz_search.json    SearchSettings: what `--resume` needs to rebuild the search
        space.yaml             the search space file as it was when the search started
        experiment_state-*.json, searcher-state-*.pkl, tuner.pkl   Ray Tune's own state
        collatz_trial_<id>/    one Tune trial: params.json, result.json, train_config.json
        _train/<id>/           the Ray Train run inside that trial: its checkpoints

Plain data and paths only, so the results reader can use it without Ray.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collatz_ray.search.spaces import SearchSpace

SETTINGS_FILE = "collatz_search.json"
#: A copy of the space file, so a resume never depends on the file where it came from.
SPACE_COPY = "space.yaml"
#: Where the Ray Train runs inside the trials keep their checkpoints.
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

    def to_json(self) -> dict[str, Any]:
        return {"space_path": str(self.space.path), "space_name": self.space.name,
                "objective": self.space.objective,
                "budget": dataclasses.asdict(self.space.budget),
                "storage": self.storage, "experiment": self.experiment,
                "cpus_per_trial": self.cpus_per_trial, "gpus_per_trial": self.gpus_per_trial,
                "seed": self.seed, "max_concurrent": self.max_concurrent,
                "eval_csv": self.eval_csv, "start_timeout_s": self.start_timeout_s}

    @property
    def path(self) -> str:
        """The experiment directory (or URI)."""
        return join(self.storage, self.experiment)


def join(storage: str, *parts: str) -> str:
    """`storage`/parts, for a local directory or a URI such as s3://bucket/prefix."""
    if "://" in storage:
        return "/".join([storage.rstrip("/"), *parts])
    return str(Path(storage).joinpath(*parts))


def trial_dirname(trial: Any) -> str:
    """Short, stable trial folder names (Ray's default embeds every parameter)."""
    return f"{TRIAL_PREFIX}{trial.trial_id}"


def save_settings(settings: SearchSettings) -> None:
    if "://" in settings.storage:
        return  # remote storage: Ray keeps tuner.pkl there; resume needs the same flags
    path = Path(settings.path)
    path.mkdir(parents=True, exist_ok=True)
    (path / SPACE_COPY).write_bytes(Path(settings.space.path).read_bytes())
    (path / SETTINGS_FILE).write_text(json.dumps(settings.to_json(), indent=1))


def load_settings_json(storage: str, experiment: str) -> dict[str, Any] | None:
    path = Path(join(storage, experiment)) / SETTINGS_FILE
    return json.loads(path.read_text()) if path.exists() else None


def experiment_space(saved: dict[str, Any], experiment_dir: Path) -> SearchSpace:
    """The space an experiment was started with: its own copy, else the file it named,
    else the shipped space of that name (an experiment from before copies were kept,
    whose checkout is gone). Smoke-shrunk if the experiment was a smoke search."""
    from collatz_ray.errors import UsageError
    from collatz_ray.search.spaces import available_spaces, load_space

    name = str(saved.get("space_name", ""))
    smoke = name.endswith("-smoke")
    base_name = name.removesuffix("-smoke")
    copy = experiment_dir / SPACE_COPY
    if copy.is_file():
        space = load_space(copy)
    elif saved.get("space_path") and Path(saved["space_path"]).is_file():
        space = load_space(saved["space_path"])
    elif base_name in available_spaces():
        space = load_space(base_name)
    else:
        raise UsageError(f"{experiment_dir / SETTINGS_FILE}: space_path {saved.get('space_path')} is gone "
                         f"and no shipped space is named {base_name!r}; pass --space with the "
                         "experiment's space file")
    space = dataclasses.replace(space, name=base_name or space.name)
    return space.smoke() if smoke else space
