"""A model from whatever a user has on disk, for the commands that read one
(`python -m collatz_ray.evaluate`, `python -m collatz_ray.verify`).

Accepted, as `path`:

- a checkpoint directory or its `state.pt`: the saved config gives the model's shape;
- a run directory or an exported trial (`config.yaml` beside `model.pth`): that config;
- a run directory still training (no `model.pth` yet): its newest checkpoint;
- a seed-format state_dict such as the published experiment's `model.pth`: the shape
  comes from the method's defaults and the flags.

Flags given explicitly (`overrides`, TrainConfig field names) win over a saved config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from collatz_ray.errors import UsageError
from collatz_ray.trainer.checkpoints import latest_checkpoint, read_weights
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.model import LyapunovMLP, build_model, load_weights


@dataclass(frozen=True)
class LoadedModel:
    model: LyapunovMLP
    config: TrainConfig
    #: The file the weights were read from (its sha256 identifies the model).
    file: Path


def load_model(path: Path, *, overrides: Mapping[str, Any], flag: str = "--checkpoint") -> LoadedModel:
    """The model stored at `path` (see the module docstring), on the CPU."""
    path = Path(path)
    file, run_config = _weights_file(path, flag=flag)
    weights, saved = read_weights(file, flag=flag)
    if saved is not None:
        base = TrainConfig.from_dict(saved, source=str(file))
    elif run_config is not None:
        base = TrainConfig.from_yaml(run_config)
    else:
        base = TrainConfig()
    config = TrainConfig.from_dict(overrides, source="command line", base=base)
    model = build_model(config)
    load_weights(model, weights, source=f"{flag} {path}")
    return LoadedModel(model, config, file)


def _weights_file(path: Path, *, flag: str) -> tuple[Path, Path | None]:
    """(file holding the weights, the run's config.yaml when the file carries none)."""
    if not path.is_dir():
        return path, None
    if (path / "state.pt").exists():
        return path / "state.pt", None
    if (path / "model.pth").exists():
        config = path / "config.yaml"
        return path / "model.pth", config if config.is_file() else None
    newest = latest_checkpoint(path)
    if newest is not None:
        return newest / "state.pt", None
    raise UsageError(f"{flag} {path}: a directory without state.pt, model.pth or checkpoints/")
