"""python -m collatz_ray.evaluate: the metrics (docs/method.md) of a checkpoint.

Reads our checkpoints (a checkpoint directory or its state.pt, a run directory or an
exported trial, whose saved config supplies the model's shape) and seed-format
state_dicts such as the published experiment's `model.pth` files (the shape comes from
--lookahead, --layers, --linear, --k-only, --k-shifted). Flags given explicitly override
a saved config. Besides the method's metrics it reports the unseen held-out steps and
the large-number trajectories (collatz_ray.trainer.heldout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from collatz_ray._cli import ArgumentParser, exit_on_usage_error
from collatz_ray.trainer.config import add_config_flags, flag_overrides

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
    from collatz_ray.trainer.evalset import ensure_default_evalset, load_evalset
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
    if args.json:
        print(strict_json(metrics))
    else:
        print(format_report(metrics, config.test_seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
