"""A run directory's checkpoints and metrics log: how they are written and read back.

    checkpoints/epoch_XXXXXXXX/ state.pt (everything needed to continue exactly) and
                                model.pth (the weights as a seed-format state_dict)
    metrics.jsonl               one JSON object per evaluation

A checkpoint directory appears under its final name only once both files are complete,
so a crash mid-write never leaves one that looks finished.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from collatz_ray.errors import UsageError

CHECKPOINT_FORMAT = 1
KEEP_CHECKPOINTS = 2


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = sorted((run_dir / "checkpoints").glob("epoch_*/state.pt"))
    return found[-1].parent if found else None


def load_checkpoint(path: Path) -> dict[str, Any]:
    state_file = path / "state.pt" if path.is_dir() else path
    if not state_file.exists():
        raise UsageError(f"{path}: no checkpoint found (expected {state_file})")
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file: say so in one line
        raise UsageError(f"{state_file}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"{state_file}: not a collatz-ray checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def read_weights(path: Path, *, flag: str = "--checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """(weights, saved config) of a checkpoint directory or state.pt, or (weights, None)
    of a seed-format state_dict such as the published experiment's model.pth."""
    if path.is_dir():
        path = path / "state.pt" if (path / "state.pt").exists() else path / "model.pth"
    if not path.exists():
        raise UsageError(f"{flag} {path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UsageError(f"{flag} {path}: not a readable PyTorch file ({type(err).__name__})") from None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        return obj["model"], obj["config"]
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, None
    raise UsageError(f"{flag} {path}: neither a collatz-ray checkpoint nor a state_dict")


def seed_format(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights on the CPU, in the published experiment's state_dict layout."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def save_checkpoint(run_dir: Path, state: dict[str, Any], model: torch.nn.Module, *, epoch: int) -> Path:
    """Write `state` (plus the format tag) and the seed-format weights as the checkpoint
    of `epoch`; keep the newest KEEP_CHECKPOINTS. Returns its directory."""
    root = run_dir / "checkpoints"
    final = root / f"epoch_{epoch:08d}"
    partial = root / f".partial_{epoch:08d}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    torch.save({"format": CHECKPOINT_FORMAT, **state}, partial / "state.pt")
    torch.save(seed_format(model), partial / "model.pth")
    # Rename last, so a crash mid-write never leaves a checkpoint that looks complete.
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    for old in sorted(root.glob("epoch_*"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def truncate_metrics(path: Path, *, after_epoch: int) -> None:
    """On resume, drop evaluations past the checkpoint so none is recorded twice."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("epoch", 0) <= after_epoch]
    path.write_text("".join(line + "\n" for line in kept))
