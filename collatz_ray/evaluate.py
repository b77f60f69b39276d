"""python -m collatz_ray.evaluate: the metrics (docs/method.md) of a checkpoint.

Reads a run directory or an exported trial (its newest checkpoint is scored), one of its
checkpoint directories or a state.pt (the saved config supplies the model's shape), and
seed-format state_dicts such as the published experiment's `model.pth` files (the shape
comes from --lookahead, --layers, --linear, --k-only, --k-shifted). Flags given
explicitly override a saved config. The line before the report says which checkpoint,
at which epoch, was scored. Besides the method's metrics it reports the unseen held-out
steps and the large-number trajectories (collatz_ray.trainer.heldout).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from collatz_ray._cli import ArgumentParser, exit_on_interrupt, exit_on_usage_error
from collatz_ray.trainer.config import TrainConfig, add_config_flags, flag_overrides

MODEL_FLAGS = ("lookahead", "layers", "linear", "k_only", "k_shifted", "eval_csv", "test_seeds", "device")


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m collatz_ray.evaluate", description=__doc__)
    p.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="run directory, checkpoint directory, state.pt, or a seed-format model.pth",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_config_flags(p, names=MODEL_FLAGS)
    return p


def checkpoint_epoch(file: Path) -> int | None:
    """The epoch of the checkpoint `epoch_XXXXXXXX/state.pt`; None for other files."""
    found = re.fullmatch(r"epoch_(\d+)", file.parent.name) if file.name == "state.pt" else None
    return int(found.group(1)) if found else None


def scored(path: Path, file: Path) -> Path:
    """What was scored, as the user would name it: the checkpoint directory when the
    weights came from its state.pt (unless that file was named), else the file."""
    return file.parent if file.name == "state.pt" and path != file else file


def describe(path: Path, file: Path, config_file: Path | None, epoch: int | None, config: TrainConfig) -> str:
    """The line before the report: what was scored, and with which shape."""
    shape = f"lookahead {config.lookahead}, " + (
        "linear" if config.linear else "layers " + ",".join(map(str, config.layers))
    )
    shape += ", k-only" * config.k_only + ", k-shifted" * config.k_shifted
    what = scored(path, file)
    if file.name == "state.pt":
        at = f"epoch {epoch}" if epoch is not None else "epoch not in its name"
        newest = f", the newest of run {path}" if path not in (file, file.parent) else ""
        return f"checkpoint {what}: {at}{newest}; its saved config: {shape}"
    if config_file is not None:
        return f"checkpoint {what}: the run's final weights, no epoch recorded; {config_file}: {shape}"
    return f"checkpoint {what}: seed format, no epoch recorded; shape from the flags: {shape}"


@exit_on_interrupt
@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from collatz_ray.syracuse.features import FeatureSpec
    from collatz_ray.trainer.evalset_csv import ensure_default_evalset, load_evalset
    from collatz_ray.trainer.evaluation import evaluate
    from collatz_ray.trainer.heldout import heldout_metrics
    from collatz_ray.trainer.loading import load_model
    from collatz_ray.trainer.loop import resolve_device
    from collatz_ray.trainer.text import format_report, strict_json

    loaded = load_model(args.checkpoint, overrides=flag_overrides(args))
    config = loaded.config
    device = resolve_device(config.device)
    model = loaded.model.to(device)
    evalset = load_evalset(config.eval_csv or ensure_default_evalset())
    spec = FeatureSpec(config.lookahead, k_only=config.k_only, k_shifted=config.k_shifted)
    metrics = evaluate(model, spec, test_seeds=config.test_seeds, evalset=evalset, device=device)
    metrics.update(heldout_metrics(model, config, metrics, device=device))
    epoch = checkpoint_epoch(loaded.file)
    if args.json:
        print(
            strict_json(
                {
                    "checkpoint": str(scored(args.checkpoint, loaded.file)),
                    "checkpoint_epoch": epoch,
                    **metrics,
                }
            )
        )
    else:
        print(describe(args.checkpoint, loaded.file, loaded.config_file, epoch, config))
        print(format_report(metrics, config.test_seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
