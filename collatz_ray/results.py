"""python -m collatz_ray.results [EXPERIMENT ...]: what a search found, read from disk.

Reads Ray Tune experiment directories (default: the newest under ./results/) with json
and pandas, never starting Ray, so it works on a laptop, while a search is still running
and after one was interrupted. It shows the best trial (ranked by collatz_ray.ranking):
its settings as a difference from the trainer's defaults, how it ended, its held-out
trajectories and population metrics and its learning curve in the log's columns; then
the top trials with their searched parameters, how violations depend on each parameter,
and a comparison with the published log (SPEC 7) and with the other experiments named.

Every run also writes summary.md (markdown, in the published log's style) into each
experiment directory. --plot adds PNG charts there; --export-best DIR writes the best
trial as a run directory that `collatz_ray.train --resume DIR` continues and
`collatz_ray.train --config DIR/config.yaml` re-runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from collatz_ray._results_export import export_best
from collatz_ray._results_read import Experiment, Trial, load_experiment, newest_experiment
from collatz_ray._results_report import (PUBLISHED, PUBLISHED_STEPS, best_trial, config_diff,
                                         ending_counts, experiment_document, ranked_trials,
                                         render_markdown, render_text)
from collatz_ray.errors import ArgumentParser, UsageError, exit_on_usage_error
from collatz_ray.tune import _positive_int

FORMATS = ("table", "md", "json", "csv")
SUMMARY_FILE = "summary.md"
DEFAULT_ROOT = Path("results")
#: The per-trial metrics of the CSV and of the JSON's trial list.
KEY_METRICS = ("traj_total_violations", "traj_total_steps", "pass_rate", "weighted_pass_rate",
               "growth_pass_rate", "growth_weighted_pass_rate", "margin_5pct", "loss", "objective")


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m collatz_ray.results", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiments", nargs="*", type=Path, metavar="EXPERIMENT",
                   help="experiment directories, each summarised and compared with the "
                        f"others (default: the newest under ./{DEFAULT_ROOT}/)")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table (terminal), md (markdown), json or csv (one row per trial)")
    p.add_argument("--top", type=_positive_int, default=20, help="trials listed (default 20)")
    p.add_argument("--plot", action="store_true",
                   help="write PNG charts into each experiment directory")
    p.add_argument("--export-best", type=Path, metavar="DIR",
                   help="write the (first) experiment's best trial as a run directory")
    return p


# -- machine-readable forms ----------------------------------------------------------------
def _plain(value: Any) -> Any:
    """JSON-safe: NaN and infinities (which Ray writes as bare NaN) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def trial_record(trial: Trial) -> dict[str, Any]:
    return {"trial_id": trial.trial_id, "status": trial.status, "ending": trial.ending.text,
            "epoch": trial.epoch, "params": trial.params, "error": trial.error,
            "metrics": {k: trial.metrics[k] for k in KEY_METRICS if k in trial.metrics}}


def best_record(trial: Trial | None) -> dict[str, Any] | None:
    if trial is None:
        return None
    diff, _problem = config_diff(trial)
    return {**trial_record(trial), "config": trial.config, "config_diff": diff,
            "metrics": trial.metrics}


def experiment_record(exp: Experiment) -> dict[str, Any]:
    best = best_trial(exp)
    return {"name": exp.name, "path": str(exp.path), "space": exp.settings.get("space_name"),
            "budget": dataclasses.asdict(exp.budget), "trials": len(exp.trials),
            "endings": ending_counts(exp),
            "best": None if best is None else trial_record(best), "notes": exp.notes}


def published_records() -> list[dict[str, Any]]:
    return [{"run": run, "change": change, "violations": v, "steps": PUBLISHED_STEPS,
             "pass_rate": p, "growth_weighted_pass_rate": g} for run, change, v, p, g in PUBLISHED]


def to_json(exps: Sequence[Experiment]) -> str:
    first = exps[0]
    return json.dumps(_plain({
        "best": best_record(best_trial(first)),
        "trials": [trial_record(t) for t in ranked_trials(first)],
        "published": published_records(),
        "experiments": [experiment_record(e) for e in exps],
    }), indent=1)


def to_csv(exps: Sequence[Experiment]) -> str:
    rows = []
    for exp in exps:
        for rank, t in enumerate(ranked_trials(exp), 1):
            rows.append({"experiment": exp.name, "rank": rank, "trial_id": t.trial_id,
                         "status": t.status, "ending": t.ending.text, "epoch": t.epoch,
                         **{p.name: _csv_cell(t.params.get(p.name)) for p in exp.parameters},
                         **{k: t.metrics.get(k) for k in KEY_METRICS}, "error": t.error})
    # Nullable dtypes keep integer columns integers where some trials have no value yet.
    return pd.DataFrame(rows).convert_dtypes().to_csv(index=False)


def _csv_cell(value: Any) -> Any:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value


# -- the command ------------------------------------------------------------------------------
def _say(line: str) -> None:
    """Progress lines go to stderr, so stdout stays exactly the chosen format."""
    print(line, file=sys.stderr)


def _others(exps: Sequence[Experiment], i: int) -> list[Experiment]:
    return [*exps[:i], *exps[i + 1:]]


def _write_summary(exp: Experiment, markdown: str) -> None:
    path = exp.path / SUMMARY_FILE
    try:
        path.write_text(markdown)
    except OSError as err:  # a read-only copy of someone's results: still print
        _say(f"note: could not write {path} ({err.strerror})")


def _plot(exp: Experiment) -> None:
    from collatz_ray._results_plots import write_plots  # matplotlib loads only for --plot

    written = write_plots(exp)
    for png in written:
        _say(f"wrote {png}")
    if not written:
        _say(f"{exp.name}: no trial has reported yet; nothing to plot")


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
