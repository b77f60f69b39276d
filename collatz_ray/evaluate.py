"""python -m collatz_ray.evaluate: the metrics (docs/method.md) of a checkpoint.

Reads our checkpoints (a run's checkpoint directory or its state.pt, whose saved config
supplies the model's shape) and seed-format state_dicts such as the published
experiment's `model.pth` files (the shape comes from --lookahead, --layers, --linear,
--k-only, --k-shifted). Flags given explicitly override a checkpoint's saved config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from collatz_ray._cli import ArgumentParser, exit_on_usage_error
from collatz_ray.trainer.config import TrainConfig, add_config_flags, flag_overrides

MODEL_FLAGS = ("lookahead", "layers", "linear", "k_only", "k_shifted", "eval_csv",
               "test_seeds", "device")


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m collatz_ray.evaluate", description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="checkpoint directory, state.pt, or a seed-format model.pth")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_config_flags(p, names=MODEL_FLAGS)
    return p


@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from collatz_ray.syracuse.features import FeatureSpec
    from collatz_ray.trainer.checkpoints import read_weights
    from collatz_ray.trainer.evalset import ensure_default_evalset, load_evalset
    from collatz_ray.trainer.evaluation import evaluate
    from collatz_ray.trainer.loop import resolve_device
    from collatz_ray.trainer.model import build_model, load_weights
    from collatz_ray.trainer.text import format_report, strict_json

    weights, saved = read_weights(args.checkpoint)
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
        print(strict_json(metrics))
    else:
        print(format_report(metrics, config.test_seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
