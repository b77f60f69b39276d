"""python -m collatz_ray.results [EXPERIMENT ...]: what a search found, read from disk.

Reads Ray Tune experiment directories (default: the newest under ./results/) with json
and pandas, never starting Ray, so it works on a laptop, while a search is still running
and after one was interrupted. It shows the best trial (ranked by collatz_ray.search.objective):
its settings as a difference from the trainer's defaults, how it ended, its held-out
trajectories and population metrics and its learning curve in the log's columns; then
the top trials with their searched parameters, how violations depend on each parameter,
and a comparison with the published log (docs/method.md) and with the other experiments named.

Every run also writes summary.md (markdown, in the published log's style) into each
experiment directory. --plot adds PNG charts there (with V along the best trial's
held-out trajectories, computed from its checkpoint); --export-best DIR writes the best
trial as a run directory that `collatz_ray.train --resume DIR` continues and
`collatz_ray.train --config DIR/config.yaml` re-runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from collatz_ray._atomic import write_atomically
from collatz_ray._cli import ArgumentParser, exit_on_interrupt, exit_on_usage_error, positive_int
from collatz_ray.errors import UsageError
from collatz_ray.results.export import export_best
from collatz_ray.results.formats import FORMATS, to_csv, to_json
from collatz_ray.results.read import Experiment, load_experiment, newest_experiment
from collatz_ray.results.report import experiment_document, render_markdown, render_text

SUMMARY_FILE = "summary.md"
DEFAULT_ROOT = Path("results")


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m collatz_ray.results", description=__doc__)
    p.add_argument(
        "experiments",
        nargs="*",
        type=Path,
        metavar="EXPERIMENT",
        help="experiment directories, each summarised and compared with the "
        f"others (default: the newest under ./{DEFAULT_ROOT}/)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (terminal), md (markdown), json or csv (one row per trial)",
    )
    p.add_argument("--top", type=positive_int, default=20, help="trials listed (default 20)")
    p.add_argument("--plot", action="store_true", help="write PNG charts into each experiment directory")
    p.add_argument(
        "--export-best",
        type=Path,
        metavar="DIR",
        help="write the (first) experiment's best trial as a run directory",
    )
    return p


# -- the command ------------------------------------------------------------------------------
def _say(line: str) -> None:
    """Progress lines go to stderr, so stdout stays exactly the chosen format."""
    print(line, file=sys.stderr)


def _others(exps: Sequence[Experiment], i: int) -> list[Experiment]:
    return [*exps[:i], *exps[i + 1 :]]


def _write_summary(exp: Experiment, markdown: str) -> None:
    path = exp.path / SUMMARY_FILE
    try:
        # Whole or not at all: a reader may open it while this runs. Not durable: the
        # next run writes it again.
        write_atomically(path, markdown, durable=False)
    except OSError as err:  # a read-only copy of someone's results: still print
        _say(f"note: could not write {path} ({err.strerror})")


def _plot(exp: Experiment) -> None:
    # matplotlib loads only for --plot; torch only for the trajectory view, and its
    # absence (or an unreadable checkpoint) costs that view alone.
    from collatz_ray.results.plots import write_plots, write_trajectory_plots

    written = write_plots(exp)
    for png in written:
        _say(f"wrote {png}")
    if not written:
        _say(f"{exp.name}: no trial has reported yet; nothing to plot")
        return
    try:
        for png, counts in write_trajectory_plots(exp):
            _say(f"wrote {png} ({counts})")
    except UsageError as err:
        _say(f"note: {exp.name}: no trajectory view of the best trial: {err}")


@exit_on_interrupt
@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _run(args)
    except OSError as err:  # an unreadable experiment, an unwritable --export-best: one line
        raise UsageError(f"{err.filename or ''}: {err.strerror or err}") from None


def _run(args: argparse.Namespace) -> int:
    exps = [load_experiment(p) for p in args.experiments or [newest_experiment(DEFAULT_ROOT)]]
    for exp in exps:
        for note in exp.notes:
            _say(f"note: {note}")
    if args.export_best is not None:
        export_best(exps[0], args.export_best, say=_say)
    docs = [experiment_document(exp, _others(exps, i), top=args.top) for i, exp in enumerate(exps)]
    for exp, doc in zip(exps, docs):
        _write_summary(exp, render_markdown(doc))
        if args.plot:
            _plot(exp)
    if args.format == "json":
        sys.stdout.write(to_json(exps) + "\n")
    elif args.format == "csv":
        sys.stdout.write(to_csv(exps))
    else:
        render = render_text if args.format == "table" else render_markdown
        sys.stdout.write("\n".join(map(render, docs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
