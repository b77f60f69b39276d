"""python -m collatz_ray.tune --space NAME: a Ray Tune search over the trainer.

Optuna's TPE suggests configs from search_spaces/NAME.yaml (or a YAML path), each trial
trains inside a Ray Train TorchTrainer, and ASHA stops trials early on held-out
trajectory violations. Without --address an embedded local Ray sized to this machine
runs the search; --address auto (or host:port) joins a cluster from `ray start --head`.
Results land in <storage>/<name>/ in Ray's own layout. --scale laptop shrinks any space
to a size two CPUs finish within about an hour; --dry-run prints the plan and a time
estimate without starting Ray (collatz_ray/search/plan.py sizes both).
`--replicate-top K --seeds S EXPERIMENT` retrains an experiment's top K configurations
with S new seeds: it is `python -m collatz_ray.replicate EXPERIMENT --top K --seeds S`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collatz_ray._cli import (
    ArgumentParser,
    exit_on_interrupt,
    exit_on_usage_error,
    number,
    positive_int,
    seed_int,
)
from collatz_ray.errors import UsageError
from collatz_ray.search.objective import ranked
from collatz_ray.search.pipeline import Launch, add_run_flags, checked_eval_csv, launch, private_files
from collatz_ray.search.plan import dry_run, plan_line, size_search
from collatz_ray.search.settings import (
    SETTINGS_FILE,
    experiment_exists,
    experiment_lock,
    experiment_space,
    join,
    load_settings_json,
)
from collatz_ray.search.spaces import PRESETS, SearchSpace, load_space
from collatz_ray.search.storage import check_name, check_storage, is_remote, resolve_storage
from collatz_ray.search.study import STUDY_FILE, resolve_study
from collatz_ray.search.tracking import Tracker, chosen_trackers, describe, parse_tracker
from collatz_ray.search.versions import check_tested_versions
from collatz_ray.trainer.text import fitted, format_report, setting_text


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m collatz_ray.tune", description=__doc__)
    p.add_argument("--space", help="search space name in search_spaces/, or a YAML path")
    add_run_flags(p)
    p.add_argument("--num-samples", type=positive_int, help="trials to run (default: the space's budget)")
    p.add_argument(
        "--epochs",
        type=positive_int,
        help="epochs per trial (default: the space's budget); "
        "scales the evaluation interval and grace period with it unless they are given",
    )
    p.add_argument("--eval-interval", type=positive_int, help="epochs between evaluations (ASHA's reports)")
    p.add_argument("--grace-epochs", type=positive_int, help="ASHA grace period in epochs")
    p.add_argument(
        "--reduction-factor",
        type=number(int, lambda v: v >= 2, "an integer >= 2"),
        help="each ASHA rung keeps one trial in this many",
    )
    p.add_argument("--seed", type=seed_int, default=0, help="search seed: same seed, same suggestions")
    p.add_argument("--name", help="experiment name (default: <space>-<time>)")
    p.add_argument("--resume", action="store_true", help="finish the experiment --name")
    p.add_argument(
        "--extend",
        metavar="NAME",
        help="add --num-samples trials to experiment NAME; TPE learns from all of its earlier trials",
    )
    p.add_argument(
        "--rebuild-study",
        metavar="NAME",
        help="make experiment NAME's optuna.db again from its trials' files (the old one is "
        "moved aside), when a resume refuses a damaged or foreign study database; starts no Ray",
    )
    p.add_argument(
        "--optuna-storage",
        metavar="URL",
        help="SQLAlchemy URL of the database that records "
        "the Optuna study (default: optuna.db inside the experiment)",
    )
    p.add_argument(
        "--smoke", action="store_true", help="shrink the space to a few tiny trials (--scale smoke)"
    )
    p.add_argument(
        "--scale",
        choices=PRESETS,
        help="shrink model, epochs and trials coherently: laptop "
        "(any shipped space within about an hour on 2 CPUs) or smoke (--smoke)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and a time estimate from a few epochs timed here; train no trial, start no Ray",
    )
    p.add_argument(
        "--track",
        type=_tracker,
        action="append",
        metavar="mlflow[=URI]|wandb",
        help="also log every trial to MLflow (default store: $MLFLOW_TRACKING_URI, else "
        "mlflow.db in the experiment) or W&B (project: the experiment's name, or "
        "$WANDB_PROJECT); repeatable. TensorBoard files are always written",
    )
    return p


def _tracker(text: str) -> Tracker:
    try:
        return parse_tracker(text)
    except UsageError as err:  # argparse keeps the message of this type only
        raise argparse.ArgumentTypeError(str(err)) from None


def print_report(
    grid_summaries: list[dict[str, Any]], *, max_epochs: int, path: str, test_seeds: Sequence[int]
) -> int:
    """The best trial on the terminal; returns the exit status (1 if no trial reported)."""
    trials = ranked(grid_summaries, max_epochs=max_epochs)
    errored = [t for t in trials if t["error"]]
    print()
    if not trials or not trials[0]["metrics"].get("objective") is not None:
        print("No trial reported a result.")
        print(f"Experiment: {path}")  # a line of its own, as after a result: paths are long
        for t in errored:
            print("\n".join(fitted(f"  {t['trial_id']}: {t['error'].splitlines()[0][:200]}")))
        return 1
    best = trials[0]
    m = best["metrics"]
    print(
        f"Best trial {best['trial_id']}: {m['traj_total_violations']}/{m['traj_total_steps']} "
        f"held-out violations at epoch {m['epoch']} (objective {m['objective']:.4f})"
    )
    for key, value in sorted(best["config"].items()):
        print(f"  {key} = {setting_text(value)}")
    print(format_report(m, test_seeds))
    if errored:
        print(f"{len(errored)} trial(s) errored: " + ", ".join(t["trial_id"] for t in errored))
    print(f"Experiment: {path}")
    print(f"Summaries: python -m collatz_ray.results {path}")
    return 0


def _space(
    args: argparse.Namespace, saved: dict[str, Any] | None, experiment_dir: Path
) -> tuple[SearchSpace, str | None]:
    """The space to search and the scale to shrink it to: --space with --smoke/--scale
    for a new search; on --resume the experiment's own, already at its scale, which
    --space may name again but not change."""
    if args.smoke and args.scale:
        raise UsageError(f"--smoke and --scale {args.scale}: choose one (--smoke is --scale smoke)")
    preset = "smoke" if args.smoke else args.scale
    given = load_space(args.space) if args.space else None
    if saved is None:
        if given is None:
            raise UsageError("--space is required (a name in search_spaces/ or a YAML path)")
        return given, preset
    if given is None:
        return experiment_space(saved, experiment_dir), None
    own = _own_or_none(saved, experiment_dir)
    if own is None:
        return given, preset
    own_preset = next((p for p in PRESETS if own.name.endswith(f"-{p}")), None)
    if _searched(given.scaled(own_preset)) != _searched(own):
        raise UsageError(
            f"--space {args.space}: experiment {experiment_dir.name} was started with "
            f"space {own.name!r}, which searches other settings; drop --space to resume it"
        )
    return own, None


def _searched(space: SearchSpace) -> tuple[Any, ...]:
    return space.fixed, space.parameters


def _own_or_none(saved: dict[str, Any], experiment_dir: Path) -> SearchSpace | None:
    try:
        return experiment_space(saved, experiment_dir)
    except UsageError:
        return None


# Outside the search (Ray starting, the plan, the report), a signal is one line and 130/143;
# during it, search/ray/interrupt.py stops Tune's loop cleanly and names the resume.
@exit_on_interrupt
@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    replicate = replicate_argv(sys.argv[1:] if argv is None else argv)
    if replicate is not None:
        from collatz_ray.replicate import main as replicate_main

        return replicate_main(replicate)
    args = parser().parse_args(argv)
    check_tested_versions(("ray", "optuna"))
    with private_files():
        return _rebuild(args) if args.rebuild_study is not None else _search(args)


def replicate_argv(argv: Sequence[str]) -> list[str] | None:
    """`--replicate-top K ...` as collatz_ray.replicate's arguments (`--top K ...`), or
    None for a search."""
    words = list(argv)
    for i, word in enumerate(words):
        if word == "--replicate-top" or word.startswith("--replicate-top="):
            return [*words[:i], word.replace("--replicate-top", "--top", 1), *words[i + 1 :]]
    return None


def _search(args: argparse.Namespace) -> int:
    storage = resolve_storage(args.storage)
    extend = _extension(args)
    if args.name is not None:
        check_name(args.name)
    saved = None
    if args.resume:
        if not args.name:
            raise UsageError("--resume needs --name of the experiment to finish")
        saved = load_settings_json(storage, args.name)
        if saved is not None:
            if extend:
                args.num_samples = _saved_num_samples(saved, storage, args.name) + extend
        elif extend or not args.space:
            flag = f"--extend {args.name}" if extend else f"--resume --name {args.name}"
            raise UsageError(f"{flag}: no experiment of that name under {storage}")
    elif args.name and experiment_exists(storage, args.name):
        raise UsageError(
            f"--name {args.name}: an experiment of that name exists under {storage}; "
            f"finish it with --resume --name {args.name}, or choose another --name"
        )
    space, preset = _space(args, saved, Path(storage) / (args.name or ""))
    sizing = size_search(
        space,
        preset=preset,
        experiment=args.name or "",
        saved_budget=None if saved is None else saved.get("budget") or {},
        flags={
            key: getattr(args, key)
            for key in ("epochs", "eval_interval", "grace_epochs", "reduction_factor", "num_samples")
        },
    )
    space = sizing.space
    check_storage(storage, creating=not args.resume, dry_run=args.dry_run)
    name = args.name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    args.track = chosen_trackers(
        args.track,
        saved=saved,
        settings_file=Path(storage, name, SETTINGS_FILE),
        experiment=name,
        storage=storage,
    )
    eval_csv = checked_eval_csv(args.eval_csv, saved)
    if args.dry_run:
        path = join(storage, args.name or f"{space.name}-<start time>")
        print(
            dry_run(
                sizing,
                address=args.address,
                cpus_per_trial=args.cpus_per_trial,
                gpus_per_trial=args.gpus_per_trial,
                saved_gpus=(saved or {}).get("gpus_per_trial"),
                max_concurrent=args.max_concurrent,
                eval_csv=eval_csv,
                resume=args.resume,
                path=path,
            )
        )
        print(describe(args.track, path=path))
        return 0

    study = resolve_study(
        given=args.optuna_storage,
        saved=saved,
        experiment_dir=join(storage, name),
        name=name,
        remote=is_remote(storage),
    )
    plan = Launch(
        tool="tune",
        space=space,
        storage=storage,
        name=name,
        resume=args.resume,
        num_samples=space.budget.num_samples,
        seed=(saved or {}).get("seed", args.seed),
        eval_csv=eval_csv,
        saved_gpus=(saved or {}).get("gpus_per_trial"),
        study=study,
        track=args.track,
        extend=extend,
    )
    return launch(
        plan,
        args,
        announce=lambda settings, share: plan_line(
            sizing, concurrency=settings.max_concurrent, cpus=share.cpus, gpus=share.gpus, path=settings.path
        ),
        report=lambda summaries, settings: print_report(
            summaries,
            max_epochs=space.budget.epochs,
            path=settings.path,
            test_seeds=space.trial_config({}).test_seeds,
        ),
    )


def _rebuild(args: argparse.Namespace) -> int:
    """--rebuild-study NAME: the experiment's study database replayed from its trials."""
    others = [f for f in ("space", "name", "extend", "num_samples", "optuna_storage") if getattr(args, f)]
    if args.resume or others:
        flag = "--resume" if args.resume else "--" + others[0].replace("_", "-")
        raise UsageError(f"--rebuild-study NAME names the experiment and takes only --storage: drop {flag}")
    storage, name = resolve_storage(args.storage), check_name(args.rebuild_study)
    saved = load_settings_json(storage, name)
    if saved is None:
        raise UsageError(f"--rebuild-study {name}: no experiment of that name under {storage}")
    experiment_dir = Path(storage) / name
    study = resolve_study(
        given=None, saved=saved, experiment_dir=str(experiment_dir), name=name, remote=is_remote(storage)
    )
    if study is None:
        raise UsageError(
            f"--rebuild-study {name}: the experiment is from before studies were recorded; "
            "its TPE state lives in Tune's own files"
        )
    from collatz_ray.results.study_rebuild import rebuild_study

    with experiment_lock(storage, name):
        rebuilt = rebuild_study(experiment_dir, study, experiment_space(saved, experiment_dir))
    replayed = ", ".join(f"{n} {state.lower()}" for state, n in sorted(rebuilt.states.items()))
    print(f"Rebuilt {experiment_dir / STUDY_FILE} from the experiment's trials: {replayed or 'none'}")
    if rebuilt.moved_aside is not None:
        print(f"The old database is kept as {rebuilt.moved_aside}")
    print(f"Continue with: python -m collatz_ray.tune --extend {name} --num-samples N --storage {storage}")
    return 0


def _extension(args: argparse.Namespace) -> int:
    """--extend NAME is a resume of NAME that may create --num-samples trials more."""
    if args.extend is None:
        return 0
    if args.resume or args.name:
        raise UsageError("--extend NAME names the experiment itself: drop --resume and --name")
    if args.num_samples is None:
        raise UsageError(f"--extend {args.extend}: give --num-samples, the number of trials to add")
    for flag in ("epochs", "eval_interval", "grace_epochs", "reduction_factor"):
        if getattr(args, flag) is not None:
            raise UsageError(
                f"--extend {args.extend}: --{flag.replace('_', '-')} cannot change: new trials "
                "run at the experiment's budget, so that all of them compare"
            )
    args.resume, args.name = True, args.extend
    extra, args.num_samples = args.num_samples, None
    return extra


def _saved_num_samples(saved: dict[str, Any], storage: str, name: str) -> int:
    value = (saved.get("budget") or {}).get("num_samples")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UsageError(
            f"{join(storage, name, SETTINGS_FILE)}: budget.num_samples: expected an integer "
            f">= 1, got {str(value)[:40]!r}"
        )
    return value


if __name__ == "__main__":
    sys.exit(main())
