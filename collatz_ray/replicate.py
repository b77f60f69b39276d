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

import os
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collatz_ray._cli import ArgumentParser, exit_on_usage_error, nonnegative_float, number, positive_int
from collatz_ray.errors import UsageError
from collatz_ray.search.failures import SearchHalted
from collatz_ray.search.plan import Sizing, size_search
from collatz_ray.search.replicate import (
    MIN_SEEDS,
    ReplicatePlan,
    given_plan,
    parse_config_text,
    plan_from_experiment,
)
from collatz_ray.search.resources import cpus_per_trial_flag, trial_resources
from collatz_ray.search.settings import (
    SETTINGS_FILE,
    SearchSettings,
    experiment_exists,
    experiment_lock,
    experiment_space,
    join,
    load_settings_json,
)
from collatz_ray.search.spaces import PRESETS, load_space
from collatz_ray.search.storage import check_name, check_storage, resolve_storage
from collatz_ray.search.versions import check_tested_versions


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
    p.add_argument(
        "--storage",
        default="results",
        help="where the source lies and the follow-up lands (default: ./results)",
    )
    p.add_argument("--shared-storage", action="store_true", help="as for collatz_ray.tune")
    p.add_argument("--resume", action="store_true", help="finish the follow-up experiment --name")
    p.add_argument("--address", help="Ray cluster to join: auto or host:port (default: embedded local Ray)")
    p.add_argument("--max-concurrent", type=positive_int, help="trials at once (default: what fits)")
    p.add_argument("--cpus-per-trial", type=cpus_per_trial_flag, default=1.0, help="as for collatz_ray.tune")
    p.add_argument("--gpus-per-trial", type=nonnegative_float, help="as for collatz_ray.tune")
    p.add_argument("--eval-csv", type=Path, help="evaluation CSV (default: the source's)")
    p.add_argument("--dry-run", action="store_true", help="print the plan; start no Ray, train nothing")
    return p


@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    check_tested_versions(("ray", "optuna"))
    umask = os.umask(0o077)  # as the search: the experiment is its user's alone
    try:
        return _replicate(args)
    finally:
        os.umask(umask)


def _replicate(args) -> int:
    storage = resolve_storage(args.storage)
    if args.name is not None:
        check_name(args.name)
    if args.resume:
        plan, sizing, saved = _resumed(args, storage)
        name = args.name
    else:
        plan, sizing, saved, default_name = _new(args, storage)
        name = args.name or f"{default_name}-replicate-{time.strftime('%Y%m%d-%H%M%S')}"
        if experiment_exists(storage, name):
            raise UsageError(
                f"--name {name}: an experiment of that name exists under {storage}; choose another --name"
            )
    # No early stopping: the grace period is the whole run, and ASHA is not used anyway.
    space = sizing.space.with_budget(grace_epochs=sizing.budget.epochs, num_samples=len(plan.points()))
    check_storage(storage, creating=not args.resume, dry_run=args.dry_run)
    eval_csv = str(args.eval_csv.resolve()) if args.eval_csv else (saved or {}).get("eval_csv")
    if eval_csv:
        from collatz_ray.trainer.evalset_csv import load_evalset

        load_evalset(eval_csv)  # refuse a bad file before any trial starts
    path = join(storage, name)
    print(plan_text(plan, space.name, epochs=space.budget.epochs, path=path), flush=True)
    if args.dry_run:
        return 0
    with experiment_lock(storage, name):
        if not args.resume and experiment_exists(storage, name):  # made while this one was checking
            raise UsageError(f"--name {name}: an experiment of that name exists under {storage}")
        from collatz_ray.search.ray.session import on_ray

        return on_ray(
            args.address,
            lambda resources: _run(
                args,
                resources,
                plan=plan,
                space=space,
                saved=saved,
                storage=storage,
                name=name,
                eval_csv=eval_csv,
            ),
            tool="replicate",
            path=path,
            resume=f"python -m collatz_ray.replicate --resume --name {name} --storage {storage}",
        )


def _new(args, storage: str) -> tuple[ReplicatePlan, Sizing, dict[str, Any] | None, str]:
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


def _resumed(args, storage: str) -> tuple[ReplicatePlan, Sizing, dict[str, Any]]:
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
    for candidate in ([] if "://" in storage else [Path(storage) / source]) + [Path(source)]:
        if candidate.is_dir():
            return candidate.resolve()
    raise UsageError(f"{source}: no experiment of that name under {storage}, and no such directory")


def plan_text(plan: ReplicatePlan, space_name: str, *, epochs: int, path: str) -> str:
    """What the replication will train, printed before it starts (and by --dry-run)."""
    trials = len(plan.points())
    lines = [
        f"Replicate {len(plan.configurations)} configuration{'s' * (len(plan.configurations) != 1)} "
        f"of '{space_name}' x {len(plan.seeds)} seeds ({', '.join(map(str, plan.seeds))}): "
        f"{trials} trials x {epochs} epochs, the full budget, no early stopping"
    ]
    for i, c in enumerate(plan.configurations, 1):
        source = (
            f" (source trial{'s' * (len(c.source_trials) > 1)} {', '.join(c.source_trials)})"
            if c.source_trials
            else ""
        )
        lines += textwrap.wrap(
            f"{i}. {c.label}{source}", width=120, initial_indent="  ", subsequent_indent="     "
        )
    if plan.source:
        lines.append(f"Source: {plan.source}")
    lines.append(f"Experiment: {path}")
    return "\n".join(lines)


def _run(
    args,
    resources: dict[str, float],
    *,
    plan: ReplicatePlan,
    space,
    saved: dict[str, Any] | None,
    storage: str,
    name: str,
    eval_csv: str | None,
) -> int:
    """On the cluster: size the trials, run or resume the replication, and summarise it.
    `saved` is the follow-up's settings on --resume, else the source's (or None)."""
    from collatz_ray.search.ray import cluster, tuner
    from collatz_ray.search.ray.status import legend

    if args.address is not None:
        check_storage(
            storage, creating=False, nodes=cluster.alive_node_count(), declared_shared=args.shared_storage
        )
    # A resumed replication keeps its GPUs; a new one sizes for this cluster, not the source's.
    saved_gpus = saved.get("gpus_per_trial") if args.resume else None
    share = trial_resources(
        resources,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        saved_gpus=saved_gpus,
    )
    # seed: the search seed TPE would use; a replication's seeds are in its plan.
    settings = SearchSettings(
        space=space,
        storage=storage,
        experiment=name,
        cpus_per_trial=share.cpus,
        gpus_per_trial=share.gpus,
        seed=0,
        max_concurrent=args.max_concurrent or share.fits,
        eval_csv=eval_csv,
        start_timeout_s=float(os.environ.get("COLLATZ_RAY_START_TIMEOUT_S", 120)),
        replicate=plan,
    )
    if args.resume and not tuner.can_restore(settings):
        raise UsageError(f"--resume --name {name}: nothing to restore at {settings.path}")
    print(f"{settings.max_concurrent} at once, {share.cpus:g} CPU + {share.gpus:g} GPU each")
    print(f"Dashboard: {cluster.dashboard_shown()}")
    print(legend([p.name for p in space.parameters]), flush=True)
    try:
        tuner.run(settings, num_samples=len(plan.points()), resume=args.resume, points=plan.points())
    except SearchHalted as err:
        print(f"collatz_ray.replicate: error: {err}", file=sys.stderr, flush=True)
        return 1
    return print_summary(settings.path)


def print_summary(path: str) -> int:
    """The replication's table and verdict; exit status 1 when no trial finished."""
    print()
    if "://" in path:
        print(f"Experiment: {path}\nSummaries: copy it here, then python -m collatz_ray.results <copy>")
        return 0
    from collatz_ray.results.read import load_experiment
    from collatz_ray.results.report import Document, render_text, replication_section

    experiment = load_experiment(Path(path))
    section = replication_section(experiment)
    print(render_text(Document(f"Replication {experiment.name}", [section])), end="")
    finished = any(t.ending.kind == "completed" for t in experiment.trials)
    if not finished:
        print("No trial reached the full budget.")
    print(f"Experiment: {path}")
    print(f"Summaries: python -m collatz_ray.results {path}")
    return 0 if finished else 1


if __name__ == "__main__":
    sys.exit(main())
