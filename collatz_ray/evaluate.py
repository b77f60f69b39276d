"""python -m collatz_ray.evaluate: the SPEC 6 metrics of a checkpoint.

Reads our checkpoints (a run's checkpoint directory or its state.pt, whose saved config
supplies the model's shape) and seed-format state_dicts such as the published
experiment's `model.pth` files (the shape comes from --lookahead, --layers, --linear,
--k-only, --k-shifted). Flags given explicitly override a checkpoint's saved config.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import torch

from collatz_ray.config import TrainConfig, add_config_flags, flag_overrides
from collatz_ray.errors import ArgumentParser, UsageError, exit_on_usage_error
from collatz_ray.evalset import ensure_default_evalset, load_evalset
from collatz_ray.evaluation import evaluate
from collatz_ray.features import FeatureSpec
from collatz_ray.model import load_weights
from collatz_ray.training import CHECKPOINT_FORMAT, build_model, resolve_device

MODEL_FLAGS = ("lookahead", "layers", "linear", "k_only", "k_shifted", "eval_csv",
               "test_seeds", "device")


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m collatz_ray.evaluate", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="checkpoint directory, state.pt, or a seed-format model.pth")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_config_flags(p, names=MODEL_FLAGS)
    return p


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """(weights, saved config or None for a seed-format file)."""
    if path.is_dir():
        path = path / "state.pt" if (path / "state.pt").exists() else path / "model.pth"
    if not path.exists():
        raise UsageError(f"--checkpoint {path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UsageError(f"--checkpoint {path}: not a readable PyTorch file ({type(err).__name__})") from None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        return obj["model"], obj["config"]
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, None
    raise UsageError(f"--checkpoint {path}: neither a collatz-ray checkpoint nor a state_dict")


def format_report(metrics: dict[str, Any], seeds: Sequence[int]) -> str:
    lines = [f"{'seed':>8} {'violations':>10} {'steps':>6} {'worst margin':>13}"]
    for s in seeds:
        worst = metrics[f"traj_{s}_worst"]
        lines.append(f"{s:>8} {metrics[f'traj_{s}_violations']:>10} {metrics[f'traj_{s}_length']:>6} "
                     f"{'none' if worst is None else f'{worst:.5f}':>13}")
    lines.append(f"{'total':>8} {metrics['traj_total_violations']:>10} {metrics['traj_total_steps']:>6}"
                 f"   ({metrics['traj_growth_violations']} on growth steps, "
                 f"{metrics['traj_decay_violations']} on decay steps)")
    lines.append("")
    lines.append(f"pass {metrics['pass_rate']:.2f}%  weighted {metrics['weighted_pass_rate']:.2f}%  "
                 f"growth {metrics['growth_pass_rate']:.2f}%  growth weighted "
                 f"{metrics['growth_weighted_pass_rate']:.2f}%  (n={metrics['n_total']}, "
                 f"growth {metrics['n_growth']})")
    lines.append(f"margin mean {metrics['margin_mean']:.5f}  median {metrics['margin_median']:.5f}  "
                 f"min {metrics['margin_min']:.5f}  5th pct {metrics['margin_5pct']:.5f}  "
                 f"growth mean {metrics['growth_margin_mean']:.5f}  growth min {metrics['growth_margin_min']:.5f}")
    return "\n".join(lines)


@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    weights, saved = read_checkpoint(args.checkpoint)
    base = TrainConfig.from_dict(saved, source=str(args.checkpoint)) if saved else TrainConfig()
    config = TrainConfig.from_dict(flag_overrides(args), source="command line", base=base)
    device = resolve_device(config.device)
    model = build_model(config)
    load_weights(model, weights, source=f"--checkpoint {args.checkpoint}")
    model.to(device)
    evalset = load_evalset(config.eval_csv or ensure_default_evalset())
    spec = FeatureSpec(config.lookahead, k_only=config.k_only, k_shifted=config.k_shifted)
    metrics = evaluate(model, spec, test_seeds=config.test_seeds, evalset=evalset, device=device)
    if args.json:
        print(json.dumps(metrics))
    else:
        print(format_report(metrics, config.test_seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
