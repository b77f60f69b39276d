"""The one search pipeline that `tune`, `tune --extend` and `replicate` all drive.

A command parses its flags (add_run_flags adds the ones every search takes), plans what
to train (a TPE search, or a replication's given configurations) into a Launch, and
hands it to `launch`: under the experiment's lock it checks that the experiment (and
its study database) is what the plan expects, starts or joins Ray, sizes the trials for
the cluster, runs or resumes the search, and reports. Every refusal comes before
anything of the experiment is written; a search that had to stop is one line and exit
status 1.

No Ray at import: the commands refuse bad input before anything heavy loads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collatz_ray.errors import UsageError
from collatz_ray.search.failures import SearchHalted
from collatz_ray.search.resources import TrialResources, cpus_per_trial_flag, trial_resources
from collatz_ray.search.settings import (
    SearchSettings,
    experiment_exists,
    experiment_lock,
    join,
    known_trial_ids,
)
from collatz_ray.search.storage import check_storage, is_remote
from collatz_ray.search.study import check_study
from collatz_ray.search.tracking import describe

if TYPE_CHECKING:
    import argparse

    from collatz_ray.search.replication import ReplicatePlan
    from collatz_ray.search.spaces import SearchSpace
    from collatz_ray.search.study import StudyStorage
    from collatz_ray.search.tracking import Tracker

#: How long a trial may wait for its resources before the search says why it cannot start.
START_TIMEOUT_ENV = "COLLATZ_RAY_START_TIMEOUT_S"


def add_run_flags(
    parser: argparse.ArgumentParser,
    *,
    storage_help: str = "where experiments land: a directory, a shared mount, or s3://bucket/prefix "
    "(default: ./results)",
    eval_csv_help: str = "evaluation CSV (default: the canonical 50k set)",
) -> None:
    """The flags of every command that runs a search on Ray: where it runs, where it is
    stored, and how each trial is sized. A flag added here is a flag of all of them."""
    from collatz_ray._cli import nonnegative_float, positive_int

    parser.add_argument(
        "--address", help="Ray cluster to join: auto or host:port (default: embedded local Ray)"
    )
    parser.add_argument("--storage", default="results", help=storage_help)
    parser.add_argument(
        "--shared-storage",
        action="store_true",
        help="--storage is a directory every node sees (a mount the check does not "
        "recognise, or nodes on one machine)",
    )
    parser.add_argument(
        "--max-concurrent", type=positive_int, help="trials at once (default: what fits the cluster)"
    )
    parser.add_argument(
        "--cpus-per-trial",
        type=cpus_per_trial_flag,
        default=1.0,
        help="CPUs per trial, >= 0.2; 0.1 of it holds the Tune trial actor (default 1)",
    )
    parser.add_argument(
        "--gpus-per-trial",
        type=nonnegative_float,
        help="GPUs per trial, fractions share a GPU (default: 1 if the cluster has GPUs, else 0)",
    )
    parser.add_argument("--eval-csv", type=Path, help=eval_csv_help)


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """Experiments, checkpoints and the files of the Ray processes started meanwhile are
    the user's alone."""
    umask = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(umask)


def checked_eval_csv(given: Path | None, saved: dict[str, Any] | None) -> str | None:
    """The evaluation CSV the trials use (the flag's, else the experiment's), refused
    now if it cannot be read rather than in every trial."""
    eval_csv = str(given.resolve()) if given else (saved or {}).get("eval_csv")
    if eval_csv:
        from collatz_ray.trainer.evalset_csv import load_evalset

        load_evalset(eval_csv)
    return eval_csv


@dataclasses.dataclass(frozen=True)
class Launch:
    """A checked plan of what to run: everything but the cluster's resources."""

    #: The command, as `python -m collatz_ray.<tool>` names it in its lines.
    tool: str
    space: SearchSpace
    storage: str
    name: str
    resume: bool
    num_samples: int
    seed: int = 0
    eval_csv: str | None = None
    #: GPUs per trial the experiment ran with (a resume keeps them), if any.
    saved_gpus: float | None = None
    study: StudyStorage | None = None
    track: tuple[Tracker, ...] = ()
    #: Trials an extension adds to a resumed search.
    extend: int = 0
    #: A replication's plan; its points replace TPE.
    replicate: ReplicatePlan | None = None

    @property
    def path(self) -> str:
        return join(self.storage, self.name)

    @property
    def resume_command(self) -> str:
        return f"python -m collatz_ray.{self.tool} --resume --name {self.name} --storage {self.storage}"


#: The line before the dashboard's: what the plan looks like on this cluster.
Announce = Callable[[SearchSettings, TrialResources], str]
#: The end of a finished search, given one summary per trial (tuner.trial_summaries):
#: print it and return the exit status.
Report = Callable[[list[dict[str, Any]], SearchSettings], int]


def launch(plan: Launch, flags: Any, *, announce: Announce, report: Report) -> int:
    """Run `plan` on Ray with the shared flags (add_run_flags) in `flags`; its exit
    status. One command per experiment at a time; the experiment and its study are
    checked under the lock, before Ray starts."""
    with experiment_lock(plan.storage, plan.name):
        if not plan.resume and experiment_exists(plan.storage, plan.name):  # made while this one was checking
            raise UsageError(f"--name {plan.name}: an experiment of that name exists under {plan.storage}")
        if plan.study is not None:
            check_study(
                plan.study,
                resuming=plan.resume,
                known_trials=None if is_remote(plan.storage) else known_trial_ids(plan.path),
                rebuild=(
                    f"python -m collatz_ray.tune --rebuild-study {plan.name} --storage {plan.storage}"
                    if plan.study.in_experiment
                    else None
                ),
            )
        from collatz_ray.search.ray.session import on_ray

        return on_ray(
            flags.address,
            lambda resources: _on_ray(plan, flags, resources, announce=announce, report=report),
            tool=plan.tool,
            path=plan.path,
            resume=plan.resume_command,
        )


def _on_ray(
    plan: Launch, flags: Any, resources: dict[str, float], *, announce: Announce, report: Report
) -> int:
    """On the cluster: size the trials, then run or resume the search and report."""
    from collatz_ray.search.ray import cluster, tuner
    from collatz_ray.search.ray.status import legend

    if flags.address is not None:
        check_storage(
            plan.storage,
            creating=False,
            nodes=cluster.alive_node_count(),
            declared_shared=flags.shared_storage,
        )
    share = trial_resources(
        resources,
        cpus_per_trial=flags.cpus_per_trial,
        gpus_per_trial=flags.gpus_per_trial,
        saved_gpus=plan.saved_gpus,
    )
    settings = SearchSettings(
        space=plan.space,
        storage=plan.storage,
        experiment=plan.name,
        cpus_per_trial=share.cpus,
        gpus_per_trial=share.gpus,
        seed=plan.seed,
        max_concurrent=flags.max_concurrent or share.fits,
        eval_csv=plan.eval_csv,
        start_timeout_s=float(os.environ.get(START_TIMEOUT_ENV, 120)),
        study=plan.study,
        replicate=plan.replicate,
        track=plan.track,
    )
    if plan.resume and not tuner.can_restore(settings):
        raise UsageError(f"--resume --name {plan.name}: nothing to restore at {settings.path}")
    print(announce(settings, share))
    print(f"Dashboard: {cluster.dashboard_shown()}")
    if plan.study is not None:
        print(f"Optuna study: optuna-dashboard {plan.study.shown}")
    print(describe(settings.track, path=settings.path))
    parameters: Sequence[str] = [p.name for p in plan.space.parameters]
    print(legend(list(parameters)), flush=True)
    try:
        grid = tuner.run(
            settings,
            num_samples=plan.num_samples,
            resume=plan.resume,
            extend=plan.extend,
            points=plan.replicate.points() if plan.replicate is not None else None,
        )
    except SearchHalted as err:
        # Not a usage error (exit 2): the search ran and had to stop. One line, last on
        # stderr after Ray's own log lines.
        print(f"collatz_ray.{plan.tool}: error: {err}", file=sys.stderr, flush=True)
        return 1
    return report(tuner.trial_summaries(grid), settings)
