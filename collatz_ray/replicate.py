"""python -m collatz_ray.replicate EXPERIMENT --top K --seeds S: is the best
configuration's lead larger than seed noise?

Retrains the top K distinct configurations of a finished experiment (ranked as
`collatz_ray.results` ranks them) at the experiment's full budget, each with the same S
new seeds (the S smallest no source trial trained with), as a follow-up experiment of
K x S trials: no TPE, no early stopping. `--space NAME --config KEY=VALUE,...`
(repeated) replicates chosen configurations instead, without a search before them.
At the end, and in `python -m collatz_ray.results FOLLOWUP`, each configuration's
violations and pass rates over its seeds (mean, sd, min..max, 95% t-interval) and
whether the best one's lead over the next is larger than seed noise (the 95% Welch
interval of the difference of means excludes zero). `--resume --name FOLLOWUP`
finishes an interrupted one; `--dry-run` prints the plan without starting Ray.
`python -m collatz_ray.tune --replicate-top K --seeds S EXPERIMENT` is the same command.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collatz_ray._cli import ArgumentParser, exit_on_interrupt, exit_on_usage_error, number, positive_int
from collatz_ray.errors import UsageError
from collatz_ray.search.pipeline import Launch, add_run_flags, checked_eval_csv, launch, private_files
from collatz_ray.search.plan import Sizing, size_search
from collatz_ray.search.replication import (
    MIN_SEEDS,
    ReplicatePlan,
    given_plan,
    parse_config_text,
    plan_from_experiment,
)
from collatz_ray.search.settings import (
    SETTINGS_FILE,
    experiment_exists,
    experiment_space,
    join,
    load_settings_json,
)
from collatz_ray.search.spaces import PRESETS, load_space
from collatz_ray.search.storage import check_name, check_storage, is_remote, resolve_storage
from collatz_ray.search.versions import check_tested_versions
from collatz_ray.trainer.text import fitted


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m collatz_ray.replicate", description=__doc__)
    p.add_argument(
        "source",
        nargs="?",
        metavar="EXPERIMENT",
        help="the experiment whose top configurations to replicate: its name under "
        "--storage, or its directory",
    )
    p.add_argument(
        "--top", type=positive_int, metavar="K", help="replicate its K best distinct configurations"
    )
    p.add_argument(
        "--seeds",
        type=number(int, lambda v: v >= MIN_SEEDS, f"an integer >= {MIN_SEEDS} (one seed has no spread)"),
        metavar="S",
        help=f"new seeds per configuration (at least {MIN_SEEDS})",
    )
    p.add_argument(
        "--space",
        help="with --config: the search space (name or YAML path) whose fixed "
        "settings and budget the given configurations complete",
    )
    p.add_argument(
        "--config",
        action="append",
        metavar="KEY=VALUE,...",
        help="a configuration to replicate, as trainer settings over the space's "
        "(repeat for each; e.g. lookahead=20,layers=16,16)",
    )
    p.add_argument("--smoke", action="store_true", help="with --space: the space at --scale smoke")
    p.add_argument("--scale", choices=PRESETS, help="with --space: the space at this scale")
    p.add_argument(
        "--epochs", type=positive_int, help="with --space: epochs per trial (default: the space's budget)"
    )
    p.add_argument("--name", help="the follow-up experiment's name (default: <source>-replicate-<time>)")
    add_run_flags(
        p,
        storage_help="where the source lies and the follow-up lands, as for collatz_ray.tune (default: ./results)",
        eval_csv_help="evaluation CSV (default: the source's)",
    )
    p.add_argument("--resume", action="store_true", help="finish the follow-up experiment --name")
    p.add_argument("--dry-run", action="store_true", help="print the plan; start no Ray, train nothing")
    return p


# Outside the search (Ray starting, the plan, the report), a signal is one line and 130/143;
# during it, search/ray/interrupt.py stops Tune's loop cleanly and names the resume.
@exit_on_interrupt
@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    check_tested_versions(("ray", "optuna"))
    with private_files():
        return _replicate(args)


def _replicate(args: argparse.Namespace) -> int:
    storage = resolve_storage(args.storage)
    if args.name is not None:
        check_name(args.name)
    saved: dict[str, Any] | None
    if args.resume:
        plan, sizing, resumed = _resumed(args, storage)
        name, saved = args.name, resumed
        # A resumed replication keeps its GPUs; a new one sizes for this cluster, not
        # the source's. (Its seed is TPE's, unused: the trials' seeds are in its plan.)
        saved_gpus = resumed.get("gpus_per_trial")
    else:
        plan, sizing, saved, default_name = _new(args, storage)
        saved_gpus = None
        name = args.name or f"{default_name}-replicate-{time.strftime('%Y%m%d-%H%M%S')}"
        if experiment_exists(storage, name):
            raise UsageError(
                f"--name {name}: an experiment of that name exists under {storage}; choose another --name"
            )
    # No early stopping: the grace period is the whole run, and ASHA is not used anyway.
    space = sizing.space.with_budget(grace_epochs=sizing.budget.epochs, num_samples=len(plan.points()))
    check_storage(storage, creating=not args.resume, dry_run=args.dry_run)
    eval_csv = checked_eval_csv(args.eval_csv, saved)
    print(plan_text(plan, space.name, epochs=space.budget.epochs, path=join(storage, name)), flush=True)
    if args.dry_run:
        return 0
    return launch(
        Launch(
            tool="replicate",
            space=space,
            storage=storage,
            name=name,
            resume=args.resume,
            num_samples=len(plan.points()),
            eval_csv=eval_csv,
            saved_gpus=saved_gpus,
            replicate=plan,
        ),
        args,
        announce=lambda settings, share: (
            f"{settings.max_concurrent} at once, {share.cpus:g} CPU + {share.gpus:g} GPU each"
        ),
        report=lambda _summaries, settings: print_summary(settings.path),
    )


def _new(args: argparse.Namespace, storage: str) -> tuple[ReplicatePlan, Sizing, dict[str, Any] | None, str]:
    """A new follow-up: the plan, the space at its budget, the source's settings and
    the default name's stem."""
    if args.seeds is None:
        raise UsageError("--seeds S is required: new seeds per configuration")
    if args.config:
        if args.source or args.top:
            raise UsageError("--config replicates given configurations; drop the experiment and --top")
        if not args.space:
            raise UsageError("--config needs --space: the space whose fixed settings and budget it completes")
        if args.smoke and args.scale:
            raise UsageError(f"--smoke and --scale {args.scale}: choose one (--smoke is --scale smoke)")
        sizing = size_search(
            load_space(args.space),
            preset="smoke" if args.smoke else args.scale,
            flags={"epochs": args.epochs},
        )
        configs = [parse_config_text(text) for text in args.config]
        plan = given_plan(
            sizing.space, configs, seeds=args.seeds, where=[f"--config {t}" for t in args.config]
        )
        return plan, sizing, None, sizing.space.name
    for flag, given in (
        ("--space", args.space),
        ("--smoke", args.smoke),
        ("--scale", args.scale),
        ("--epochs", args.epochs),
    ):
        if given:
            raise UsageError(
                f"{flag}: only with --config; an experiment's replicates train with its "
                "own space at its full budget"
            )
    if not args.source:
        raise UsageError("name the experiment to replicate (or give --space and --config)")
    if not args.top:
        raise UsageError(f"--top K is required: how many of {args.source}'s best configurations")
    source = _source_dir(args.source, storage)
    saved = load_settings_json(str(source.parent), source.name)
    if saved is None:
        raise UsageError(
            f"{source}: no {SETTINGS_FILE}, so its space and budget are unknown; "
            "replicate chosen configurations with --space and --config instead"
        )
    from collatz_ray.results.read import load_experiment
    from collatz_ray.results.report import ranked_trials

    experiment = load_experiment(source)
    sizing = size_search(
        experiment_space(saved, source),
        flags={},
        saved_budget=saved.get("budget") or {},
        experiment=source.name,
    )
    plan = plan_from_experiment(
        ranked_trials(experiment), sizing.space, top=args.top, seeds=args.seeds, source=str(source)
    )
    return plan, sizing, saved, source.name


def _resumed(args: argparse.Namespace, storage: str) -> tuple[ReplicatePlan, Sizing, dict[str, Any]]:
    if not args.name:
        raise UsageError("--resume needs --name of the follow-up experiment to finish")
    for flag, given in (
        ("the experiment", args.source),
        ("--top", args.top),
        ("--seeds", args.seeds),
        ("--config", args.config),
        ("--space", args.space),
        ("--epochs", args.epochs),
    ):
        if given:
            raise UsageError(
                f"--resume --name {args.name}: drop {flag}; a resumed replication keeps its own plan"
            )
    saved = load_settings_json(storage, args.name)
    if saved is None:
        raise UsageError(f"--resume --name {args.name}: no experiment of that name under {storage}")
    where = join(storage, args.name, SETTINGS_FILE)
    if "replicate" not in saved:
        raise UsageError(
            f"{where}: not a replication (no replicate plan); a search resumes with "
            f"python -m collatz_ray.tune --resume --name {args.name}"
        )
    plan = ReplicatePlan.from_json(saved["replicate"], where=where)
    sizing = size_search(
        experiment_space(saved, Path(storage) / args.name),
        flags={},
        saved_budget=saved.get("budget") or {},
        experiment=args.name,
    )
    return plan, sizing, saved


def _source_dir(source: str, storage: str) -> Path:
    """The source experiment: a name under --storage, else a directory."""
    for candidate in ([] if is_remote(storage) else [Path(storage) / source]) + [Path(source)]:
        if candidate.is_dir():
            return candidate.resolve()
    raise UsageError(f"{source}: no experiment of that name under {storage}, and no such directory")


def plan_text(plan: ReplicatePlan, space_name: str, *, epochs: int, path: str) -> str:
    """What the replication will train, printed before it starts (and by --dry-run)."""
    trials = len(plan.points())
    lines = fitted(
        f"Replicate {len(plan.configurations)} configuration{'s' * (len(plan.configurations) != 1)} "
        f"of '{space_name}' x {len(plan.seeds)} seeds ({', '.join(map(str, plan.seeds))}): "
        f"{trials} trials x {epochs} epochs, the full budget, no early stopping",
        indent="  ",
    )
    for i, c in enumerate(plan.configurations, 1):
        source = (
            f" (source trial{'s' * (len(c.source_trials) > 1)} {', '.join(c.source_trials)})"
            if c.source_trials
            else ""
        )
        lines += fitted(f"  {i}. {c.label}{source}", indent="     ")
    if plan.source:
        lines.append(f"Source: {plan.source}")
    lines.append(f"Experiment: {path}")
    return "\n".join(lines)


def print_summary(path: str) -> int:
    """The replication's table and verdict; exit status 1 when no trial finished."""
    print()
    if is_remote(path):
        print(f"Experiment: {path}\nSummaries: copy it here, then python -m collatz_ray.results <copy>")
        return 0
    from collatz_ray.results.read import load_experiment
    from collatz_ray.results.report import Document, render_text, replication_section

    experiment = load_experiment(Path(path))
    # No section when the experiment's settings no longer read as a replication's.
    section = replication_section(experiment)
    sections = [section] if section is not None else []
    print(render_text(Document(f"Replication {experiment.name}", sections)), end="")
    finished = any(t.ending.kind == "completed" for t in experiment.trials)
    if not finished:
        print("No trial reached the full budget.")
    print(f"Experiment: {path}")
    print(f"Summaries: python -m collatz_ray.results {path}")
    return 0 if finished else 1


if __name__ == "__main__":
    sys.exit(main())
