"""python -m collatz_ray.train: one training run of the method in docs/method.md.

Settings come from, in increasing precedence: the method's defaults, `--smoke` (a tiny run
for a laptop CPU), `--config FILE.yaml`, and one flag per setting. `--resume DIR`
continues a run exactly from its newest checkpoint; its epochs and device come from
--epochs/--device, else from DIR/config.yaml, else from the checkpoint.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from collatz_ray._cli import ArgumentParser, exit_on_usage_error
from collatz_ray.errors import UsageError
from collatz_ray.trainer.checkpoints import latest_checkpoint, load_checkpoint
from collatz_ray.trainer.config import TrainConfig, add_config_flags, flag_overrides
from collatz_ray.trainer.loop import TrainingDiverged, resolve_device, train

#: Small enough for a CPU in well under a minute, large enough to exercise everything.
SMOKE = {"layers": (32, 32), "epochs": 300, "eval_interval": 100, "batch_size": 256,
         "decay_start": 50, "decay_len": 100, "mine_interval": 100, "mine_pool": 512,
         "mine_count": 16, "ramp_len": 200}


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m collatz_ray.train", description=__doc__)
    p.add_argument("--config", type=Path, help="YAML file of settings")
    p.add_argument("--out", type=Path, help="run directory (default: results/runs/<time>)")
    p.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR")
    p.add_argument("--smoke", action="store_true", help="tiny model and few epochs")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    p.add_argument("--split-loss", action="store_true",
                   help="the original's name for --target-type split")
    add_config_flags(p)
    return p


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    config = TrainConfig()
    if args.smoke:
        config = TrainConfig.from_dict(SMOKE, source="--smoke", base=config)
    if args.config is not None:
        config = TrainConfig.from_yaml(args.config, base=config)
    overrides = flag_overrides(args)
    if args.split_loss:
        if overrides.get("target_type", "split") != "split":
            raise UsageError("--split-loss contradicts --target-type " + overrides["target_type"])
        overrides["target_type"] = "split"
    return TrainConfig.from_dict(overrides, source="command line", base=config)


def resumed_config(args: argparse.Namespace, state: dict, run_dir: Path, checkpoint: Path) -> TrainConfig:
    """The run's own config, from its checkpoint; only epochs and device may change.

    Those two come from --epochs/--device, else from DIR/config.yaml (which a resume
    with --epochs rewrites before its first new checkpoint, and in which an exported
    trial says `device: auto`, so a CPU trial continues on a GPU where there is one),
    else from the checkpoint."""
    overrides = flag_overrides(args)
    extra = ["--" + k.replace("_", "-") for k in sorted(set(overrides) - {"epochs", "device"})]
    extra += [flag for flag, given in (("--config", args.config), ("--smoke", args.smoke),
                                       ("--split-loss", args.split_loss)) if given]
    if extra:
        raise UsageError(f"--resume continues the run with its own settings; only --epochs and "
                         f"--device may be given (got {', '.join(extra)})")
    saved = TrainConfig.from_dict(state["config"], source=str(checkpoint))
    run_yaml = run_dir / "config.yaml"
    if run_yaml.is_file():
        recorded = TrainConfig.from_yaml(run_yaml)
        saved = saved.replace(**{key: getattr(recorded, key) for key in ("epochs", "device")
                                 if key not in overrides})
    return TrainConfig.from_dict(overrides, source="command line", base=saved)


@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    resume_from = None
    if args.resume is not None:
        if args.out is not None and args.out.resolve() != args.resume.resolve():
            raise UsageError("--resume continues in its own directory; drop --out")
        if not args.resume.is_dir():
            raise UsageError(f"--resume {args.resume}: no such run directory")
        resume_from = latest_checkpoint(args.resume)
        if resume_from is None:
            raise UsageError(f"--resume {args.resume}: the run has no checkpoint yet")
        state = load_checkpoint(resume_from)
        config = resumed_config(args, state, args.resume, resume_from)
        run_dir = args.resume
        done = state["epoch"]
        if done == config.epochs:
            if not args.quiet:
                print(f"run {run_dir} is already at epoch {done} of {config.epochs}: nothing to train; "
                      f"--epochs N (more than {done}) continues it")
            return 0
        if not args.quiet and done < config.epochs:
            own = "" if "epochs" in flag_overrides(args) else " (the run's own epochs; --epochs N for more)"
            print(f"resuming run {run_dir} at epoch {done} of {config.epochs}{own} on "
                  f"{resolve_device(config.device)}", flush=True)
    else:
        config = resolve_config(args)
        run_dir = args.out or Path("results") / "runs" / time.strftime("%Y%m%d-%H%M%S")
    try:
        train(config, run_dir=run_dir, resume_from=resume_from, verbose=not args.quiet)
    except TrainingDiverged as err:
        print(f"collatz_ray.train: error: {err}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"run directory: {run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
