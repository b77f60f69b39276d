"""python -m collatz_ray.evaluate: the metrics (docs/method.md) of a checkpoint.

Reads a run directory or an exported trial (config.yaml and checkpoints/: its newest
checkpoint is scored), one of its checkpoint directories or a state.pt (the saved config
supplies the model's shape), and seed-format state_dicts such as the published
experiment's `model.pth` files (the shape comes from --lookahead, --layers, --linear,
--k-only, --k-shifted). Flags given explicitly override a checkpoint's saved config.
The line before the report says which checkpoint, at which epoch, was scored.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

from collatz_ray._cli import ArgumentParser, exit_on_usage_error
from collatz_ray.errors import UsageError
from collatz_ray.trainer.config import TrainConfig, add_config_flags, flag_overrides

MODEL_FLAGS = ("lookahead", "layers", "linear", "k_only", "k_shifted", "eval_csv",
               "test_seeds", "device")


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m collatz_ray.evaluate", description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="run directory, checkpoint directory, state.pt, or a seed-format model.pth")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_config_flags(p, names=MODEL_FLAGS)
    return p


def scored_path(path: Path) -> Path:
    """What `--checkpoint path` scores: a run directory or an exported trial (it has
    checkpoints/ and no state.pt of its own) is its newest checkpoint; anything else
    is read as it is."""
    from collatz_ray.trainer.checkpoints import latest_checkpoint

    if not (path.is_dir() and (path / "checkpoints").is_dir() and not (path / "state.pt").exists()):
        return path
    newest = latest_checkpoint(path)
    if newest is None:
        raise UsageError(f"--checkpoint {path}: the run has no finished checkpoint yet "
                         f"(nothing under {path / 'checkpoints'})")
    return newest


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch of a checkpoint directory `epoch_XXXXXXXX` (or of its state.pt)."""
    folder = path.parent if path.name == "state.pt" else path
    found = re.fullmatch(r"epoch_(\d+)", folder.name)
    return int(found.group(1)) if found else None


def describe(path: Path, scored: Path, epoch: int | None, has_config: bool, config: TrainConfig) -> str:
    """The line before the report: what was scored, and with which shape."""
    shape = f"lookahead {config.lookahead}, " + (
        "linear" if config.linear else "layers " + ",".join(map(str, config.layers)))
    shape += ", k-only" * config.k_only + ", k-shifted" * config.k_shifted
    if not has_config:
        return f"checkpoint {scored}: seed format, no epoch recorded; shape from the flags: {shape}"
    at = f"epoch {epoch}" if epoch is not None else "epoch not in its name"
    newest = f", the newest of run {path}" if scored != path else ""
    return f"checkpoint {scored}: {at}{newest}; its saved config: {shape}"


@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from collatz_ray.syracuse.features import FeatureSpec
    from collatz_ray.trainer.checkpoints import read_weights
    from collatz_ray.trainer.evalset import ensure_default_evalset, load_evalset
    from collatz_ray.trainer.evaluation import evaluate
    from collatz_ray.trainer.loop import resolve_device
    from collatz_ray.trainer.model import build_model, load_weights
    from collatz_ray.trainer.text import format_report

    scored = scored_path(args.checkpoint)
    weights, saved = read_weights(scored)
    epoch = checkpoint_epoch(scored) if saved else None
    base = TrainConfig.from_dict(saved, source=str(scored)) if saved else TrainConfig()
    config = TrainConfig.from_dict(flag_overrides(args), source="command line", base=base)
    device = resolve_device(config.device)
    model = build_model(config)
    load_weights(model, weights, source=f"--checkpoint {scored}")
    model.to(device)
    evalset = load_evalset(config.eval_csv or ensure_default_evalset())
    spec = FeatureSpec(config.lookahead, k_only=config.k_only, k_shifted=config.k_shifted)
    metrics = evaluate(model, spec, test_seeds=config.test_seeds, evalset=evalset, device=device)
    if args.json:
        print(json.dumps({"checkpoint": str(scored), "checkpoint_epoch": epoch, **metrics}))
    else:
        print(describe(args.checkpoint, scored, epoch, saved is not None, config))
        print(format_report(metrics, config.test_seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
