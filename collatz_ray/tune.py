"""python -m collatz_ray.tune --space NAME: a Ray Tune search over the trainer.

Optuna's TPE suggests configs from search_spaces/NAME.yaml (or a YAML path), each trial
trains inside a Ray Train TorchTrainer, and ASHA stops trials early on held-out
trajectory violations. Without --address an embedded local Ray sized to this machine
runs the search; --address auto (or host:port) joins a cluster from `ray start --head`.
Results land in <storage>/<name>/ in Ray's own layout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from collatz_ray.errors import ArgumentParser, UsageError, exit_on_usage_error
from collatz_ray.evaluate import format_report
from collatz_ray.ranking import ranked
from collatz_ray.spaces import load_space
from collatz_ray.storage import check_storage


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m collatz_ray.tune", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", help="search space name in search_spaces/, or a YAML path")
    p.add_argument("--address", help="Ray cluster to join: auto or host:port (default: embedded local Ray)")
    p.add_argument("--num-samples", type=_positive_int, help="trials to run (default: the space's budget)")
    p.add_argument("--max-concurrent", type=_positive_int, help="trials at once (default: what fits the cluster)")
    p.add_argument("--epochs", type=_positive_int, help="epochs per trial (default: the space's budget)")
    p.add_argument("--grace-epochs", type=_positive_int, help="ASHA grace period in epochs")
    p.add_argument("--seed", type=int, default=0, help="search seed: same seed, same suggestions")
    p.add_argument("--name", help="experiment name (default: <space>-<time>)")
    p.add_argument("--storage", default="results", help="where experiments land: a directory, "
                   "a shared mount, or s3://bucket/prefix (default: ./results)")
    p.add_argument("--shared-storage", action="store_true",
                   help="--storage is a directory every node sees (a mount the check does not "
                        "recognise, or nodes on one machine)")
    p.add_argument("--resume", action="store_true", help="finish the experiment --name")
    p.add_argument("--cpus-per-trial", type=_at_least_trial_actor, default=1.0,
                   help="CPUs per trial, >= 0.2; 0.1 of it holds the Tune trial actor (default 1)")
    p.add_argument("--gpus-per-trial", type=_nonnegative_float,
                   help="GPUs per trial, fractions share a GPU (default: 1 if the cluster has GPUs, else 0)")
    p.add_argument("--eval-csv", type=Path, help="evaluation CSV (default: the canonical 50k set)")
    p.add_argument("--smoke", action="store_true", help="shrink the space to a few tiny trials")
    return p


def _number(kind, check, what):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


_positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
_at_least_trial_actor = _number(float, lambda v: v >= 0.2, "a number >= 0.2")
_nonnegative_float = _number(float, lambda v: v >= 0, "a number >= 0")


def print_report(grid_summaries: list[dict[str, Any]], *, max_epochs: int, path: str,
                 test_seeds: Sequence[int]) -> int:
    """The best trial on the terminal; returns the exit status (1 if no trial reported)."""
    trials = ranked(grid_summaries, max_epochs=max_epochs)
    errored = [t for t in trials if t["error"]]
    print()
    if not trials or not trials[0]["metrics"].get("objective") is not None:
        print(f"No trial reported a result. Experiment: {path}")
        for t in errored:
            print(f"  {t['trial_id']}: {t['error'].splitlines()[0][:200]}")
        return 1
    best = trials[0]
    m = best["metrics"]
    print(f"Best trial {best['trial_id']}: {m['traj_total_violations']}/{m['traj_total_steps']} "
          f"held-out violations at epoch {m['epoch']} (objective {m['objective']:.4f})")
    for key, value in sorted(best["config"].items()):
        print(f"  {key} = {value}")
    print(format_report(m, test_seeds))
    if errored:
        print(f"{len(errored)} trial(s) errored: " + ", ".join(t["trial_id"] for t in errored))
    print(f"Experiment: {path}")
    print(f"Summaries: python -m collatz_ray.results {path}")
    return 0


@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    storage = args.storage if "://" in args.storage else str(Path(args.storage).resolve())
    saved = None
    if args.resume:
        if not args.name:
            raise UsageError("--resume needs --name of the experiment to finish")
        from collatz_ray import ray_adapter as ra
        saved = ra.load_settings_json(storage, args.name)
        if saved is None and not args.space:
            raise UsageError(f"--resume --name {args.name}: no experiment of that name under {storage}")
    space_ref = args.space or (saved or {}).get("space_path")
    if not space_ref:
        raise UsageError("--space is required (a name in search_spaces/ or a YAML path)")
    space = load_space(space_ref)
    if args.smoke or (saved and str(saved.get("space_name", "")).endswith("-smoke")):
        space = space.smoke()
    budget = (saved or {}).get("budget", {})
    space = space.with_budget(epochs=args.epochs or budget.get("epochs"),
                              grace_epochs=args.grace_epochs or budget.get("grace_epochs"),
                              num_samples=args.num_samples or budget.get("num_samples"))
    check_storage(storage, creating=not args.resume)
    name = args.name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    eval_csv = str(args.eval_csv.resolve()) if args.eval_csv else (saved or {}).get("eval_csv")
    if eval_csv:
        from collatz_ray.evalset import load_evalset
        load_evalset(eval_csv)  # refuse a bad file before any trial starts

    # Everything the user typed is checked; now start or join Ray.
    from collatz_ray import ray_adapter as ra

    resources = ra.connect(args.address)
    try:
        if args.address is not None:
            check_storage(storage, creating=False, nodes=ra.alive_node_count(),
                          declared_shared=args.shared_storage)
        gpus = args.gpus_per_trial
        if gpus is None:
            gpus = (saved or {}).get("gpus_per_trial", 1.0 if resources.get("GPU", 0) > 0 else 0.0)
        if gpus > 0 and resources.get("GPU", 0) <= 0:
            raise UsageError(f"--gpus-per-trial {gpus:g}: the cluster has no GPUs")
        cpus = args.cpus_per_trial
        fits = ra.fitting_concurrency(resources, cpus_per_trial=cpus, gpus_per_trial=gpus)
        if cpus > resources.get("CPU", 0) + 1e-9:
            raise UsageError(f"--cpus-per-trial {cpus:g}: the cluster has only {resources.get('CPU', 0):g} CPUs")
        settings = ra.SearchSettings(
            space=space, storage=storage, experiment=name, cpus_per_trial=cpus,
            gpus_per_trial=gpus, seed=(saved or {}).get("seed", args.seed),
            max_concurrent=args.max_concurrent or fits, eval_csv=eval_csv,
            start_timeout_s=float(os.environ.get("COLLATZ_RAY_START_TIMEOUT_S", 120)))
        if args.resume and not ra.can_restore(settings):
            raise UsageError(f"--resume --name {name}: nothing to restore at {ra.experiment_path(settings)}")
        b = space.budget
        print(f"Search '{space.name}': {b.num_samples} trials x {b.epochs} epochs "
              f"(eval every {b.eval_interval}, ASHA grace {b.grace_epochs}, factor {b.reduction_factor}); "
              f"{settings.max_concurrent} at once, {cpus:g} CPU + {gpus:g} GPU each; "
              f"experiment {ra.experiment_path(settings)}", flush=True)
        try:
            grid = ra.run(settings, num_samples=b.num_samples, resume=args.resume)
        except ra.StorageFailed as err:
            # Not a usage error (exit 2): the search ran and its storage gave out. One
            # line, last on stderr after Ray's own log lines.
            print(f"collatz_ray.tune: error: {err}", file=sys.stderr, flush=True)
            return 1
        return print_report(ra.trial_summaries(grid), max_epochs=b.epochs,
                            path=ra.experiment_path(settings),
                            test_seeds=space.trial_config({}).test_seeds)
    finally:
        ra.shutdown()


if __name__ == "__main__":
    sys.exit(main())
