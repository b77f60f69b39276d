"""A model from whatever a user has on disk, for the commands that read one
(`python -m collatz_ray.evaluate`, `python -m collatz_ray.verify`).

Accepted, as `path`:

- a checkpoint directory or its `state.pt`: the saved config gives the model's shape;
- a run directory or an exported trial (`checkpoints/`, finished or still training):
  its newest checkpoint, whose saved config gives the shape;
- a run directory without checkpoints (`config.yaml` beside `model.pth`): that config;
- a seed-format state_dict such as the published experiment's `model.pth`: the shape
  comes from the method's defaults and the flags.

Flags given explicitly (`overrides`, TrainConfig field names) win over a saved config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collatz_ray.errors import UsageError
from collatz_ray.trainer.checkpoints import latest_checkpoint, read_model_file
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.model import LyapunovMLP, build_model, load_weights


@dataclass(frozen=True)
class LoadedModel:
    model: LyapunovMLP
    config: TrainConfig
    #: The file the weights were read from (its sha256 identifies the model).
    file: Path
    #: Where the config came from (a state.pt or a config.yaml); None: defaults and flags.
    config_file: Path | None = None
    #: The epoch a checkpoint was saved at; None for a seed-format file.
    epoch: int | None = None


def load_model(path: Path, *, overrides: Mapping[str, Any], flag: str = "--checkpoint") -> LoadedModel:
    """The model stored at `path` (see the module docstring), on the CPU."""
    path = Path(path)
    file, run_config = _weights_file(path, flag=flag)
    weights, saved, epoch = read_model_file(file, flag=flag)
    if saved is not None:
        base, config_file = TrainConfig.from_dict(saved, source=str(file)), file
    elif run_config is not None:
        base, config_file = TrainConfig.from_yaml(run_config), run_config
    else:
        base, config_file = TrainConfig(), None
    config = TrainConfig.from_dict(overrides, source="command line", base=base)
    model = build_model(config)
    load_weights(model, weights, source=f"{flag} {path}")
    return LoadedModel(model, config, file, config_file, epoch)


def _weights_file(path: Path, *, flag: str) -> tuple[Path, Path | None]:
    """(file holding the weights, the run's config.yaml when the file carries none)."""
    if not path.is_dir():
        return path, None
    if (path / "state.pt").exists():
        return path / "state.pt", None
    # The newest checkpoint before model.pth: a run extended by --resume and stopped early
    # has newer checkpoints than its model.pth, and a checkpoint knows its epoch.
    newest = latest_checkpoint(path)
    if newest is not None:
        return newest / "state.pt", None
    if (path / "model.pth").exists():
        config = path / "config.yaml"
        return path / "model.pth", config if config.is_file() else None
    if (path / "checkpoints").is_dir():
        raise UsageError(
            f"{flag} {path}: the run has no finished checkpoint yet (nothing under {path / 'checkpoints'})"
        )
    raise UsageError(f"{flag} {path}: a directory without state.pt, model.pth or checkpoints/")
