"""python -m collatz_ray.train: one training run of the method in docs/method.md.

Settings come from, in increasing precedence: the method's defaults, `--smoke` (a tiny run
for a laptop CPU), `--config FILE.yaml`, and one flag per setting. `--resume DIR`
continues a run exactly from its newest intact checkpoint; its epochs and device come
from --epochs/--device, else from DIR/config.yaml, else from the checkpoint. A directory
that holds a run is replaced only with `--overwrite`; one process at a time works in a
run directory.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from collatz_ray._cli import ArgumentParser, exit_on_interrupt, exit_on_usage_error, resume_command
from collatz_ray._interrupt import Interrupted
from collatz_ray.errors import UsageError
from collatz_ray.trainer.checkpoints import load_checkpoint, resumable_checkpoint, run_lock
from collatz_ray.trainer.config import TrainConfig, add_config_flags, flag_overrides
from collatz_ray.trainer.loop import TrainingDiverged, resolve_device, train

#: Small enough for a CPU in well under a minute, large enough to exercise everything.
SMOKE = {
    "layers": (32, 32),
    "epochs": 300,
    "eval_interval": 100,
    "batch_size": 256,
    "decay_start": 50,
    "decay_len": 100,
    "mine_interval": 100,
    "mine_pool": 512,
    "mine_count": 16,
    "ramp_len": 200,
}


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m collatz_ray.train", description=__doc__)
    p.add_argument("--config", type=Path, help="YAML file of settings")
    p.add_argument("--out", type=Path, help="run directory (default: results/runs/<time>)")
    p.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the run in --out DIR (its files are removed first)"
    )
    p.add_argument("--smoke", action="store_true", help="tiny model and few epochs")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    p.add_argument(
        "--split-loss",
        action="store_true",
        help="the original's flag: with --target-type adaptive it means split; "
        "with a fixed target it changes nothing",
    )
    add_config_flags(p)
    return p


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    config = TrainConfig()
    if args.smoke:
        config = TrainConfig.from_dict(SMOKE, source="--smoke", base=config)
    if args.config is not None:
        config = TrainConfig.from_yaml(args.config, base=config)
    config = TrainConfig.from_dict(flag_overrides(args), source="command line", base=config)
    if args.split_loss:
        # The published code: the split applies to an adaptive target (its runs passed
        # `--target-type adaptive --split-loss`); a fixed target stays fixed.
        if config.target_type == "adaptive":
            return config.replace(target_type="split")
        if config.target_type == "fixed" and not args.quiet:
            print(
                "collatz_ray.train: note: --split-loss without --target-type adaptive leaves "
                "the target fixed, as the published code did",
                file=sys.stderr,
            )
    return config


def check_resume_flags(args: argparse.Namespace) -> None:
    """--resume continues the run as it was: refuse flags that would change it."""
    if args.out is not None and args.out.resolve() != args.resume.resolve():
        raise UsageError("--resume continues in its own directory; drop --out")
    extra = ["--" + k.replace("_", "-") for k in sorted(set(flag_overrides(args)) - {"epochs", "device"})]
    extra += [
        flag
        for flag, given in (
            ("--config", args.config),
            ("--smoke", args.smoke),
            ("--split-loss", args.split_loss),
            ("--overwrite", args.overwrite),
        )
        if given
    ]
    if extra:
        raise UsageError(
            f"--resume continues the run with its own settings; only --epochs and "
            f"--device may be given (got {', '.join(extra)})"
        )
    if not args.resume.is_dir():
        raise UsageError(f"--resume {args.resume}: no such run directory")


def resume_point(run_dir: Path) -> tuple[Path, list[str]]:
    """The newest intact checkpoint, and notes on the corrupted newer ones it passes over
    (the epochs after it are computed again, the same)."""
    checkpoint, problems = resumable_checkpoint(run_dir)
    if checkpoint is None:
        if problems:
            raise UsageError(
                f"--resume {run_dir}: {problems[0]}; no earlier checkpoint is intact: "
                f"start over with --out {run_dir} --overwrite"
            )
        raise UsageError(f"--resume {run_dir}: the run has no checkpoint yet")
    return checkpoint, [f"{problem}; resuming from {checkpoint}" for problem in problems]


def resumed_config(args: argparse.Namespace, state: dict, run_dir: Path, checkpoint: Path) -> TrainConfig:
    """The run's own config, from its checkpoint; only epochs and device may change.

    Those two come from --epochs/--device, else from DIR/config.yaml (which a resume
    with --epochs rewrites before its first new checkpoint, and in which an exported
    trial says `device: auto`, so a CPU trial continues on a GPU where there is one),
    else from the checkpoint."""
    overrides = flag_overrides(args)
    saved = TrainConfig.from_dict(state["config"], source=str(checkpoint))
    run_yaml = run_dir / "config.yaml"
    if run_yaml.is_file():
        recorded = TrainConfig.from_yaml(run_yaml)
        saved = saved.replace(
            **{key: getattr(recorded, key) for key in ("epochs", "device") if key not in overrides}
        )
    return TrainConfig.from_dict(overrides, source="command line", base=saved)


@exit_on_interrupt
@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.resume is None:
        config = resolve_config(args)
        run_dir = args.out or Path("results") / "runs" / time.strftime("%Y%m%d-%H%M%S")
        return run(config, run_dir=run_dir, resume_from=None, args=args)
    check_resume_flags(args)
    # Held before the newest checkpoint is looked up: a run still going is refused by
    # name rather than resumed from a checkpoint it is about to replace.
    with run_lock(args.resume):
        resume_from, notes = resume_point(args.resume)
        state = load_checkpoint(resume_from)
        config = resumed_config(args, state, args.resume, resume_from)
        for note in notes:
            print(f"collatz_ray.train: note: {note}", file=sys.stderr)
        done = state["epoch"]
        if done == config.epochs:
            if not args.quiet:
                print(
                    f"run {args.resume} is already at epoch {done} of {config.epochs}: nothing to "
                    f"train; --epochs N (more than {done}) continues it"
                )
            return 0
        if not args.quiet and done < config.epochs:
            own = "" if "epochs" in flag_overrides(args) else " (the run's own epochs; --epochs N for more)"
            print(
                f"resuming run {args.resume} at epoch {done} of {config.epochs}{own} on "
                f"{resolve_device(config.device)}",
                flush=True,
            )
        return run(config, run_dir=args.resume, resume_from=resume_from, args=args)


def run(config: TrainConfig, *, run_dir: Path, resume_from: Path | None, args: argparse.Namespace) -> int:
    try:
        train(
            config, run_dir=run_dir, resume_from=resume_from, overwrite=args.overwrite, verbose=not args.quiet
        )
    except TrainingDiverged as err:
        print(f"collatz_ray.train: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:
        raise Interrupted.of(stop, kept=what_was_kept(run_dir)) from None
    if not args.quiet:
        print(f"run directory: {run_dir}")
    return 0


def what_was_kept(run_dir: Path) -> str:
    """The line of an interrupted run: its newest checkpoint and the command that goes on
    from it (the epochs after it are trained again, the same)."""
    checkpoint, _ = resumable_checkpoint(run_dir)
    if checkpoint is None:
        return f"no checkpoint was written yet: start over with --out {run_dir} --overwrite"
    again = resume_command(main, ["--resume", str(run_dir)])
    return f"the run is kept up to {checkpoint}; continue with: {again}"


if __name__ == "__main__":
    raise SystemExit(main())
