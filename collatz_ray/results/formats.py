"""The machine-readable forms of a summary: JSON (best trial, ranked trials, the
parameters' importances, the published log, every experiment named) and CSV (one row
per trial)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pandas as pd

from collatz_ray.results import replicates
from collatz_ray.results.importance import parameter_importances
from collatz_ray.results.read import Experiment, Trial
from collatz_ray.results.report import (
    PUBLISHED,
    PUBLISHED_STEPS,
    bank_summary,
    best_trial,
    config_diff,
    ending_counts,
    ranked_trials,
)
from collatz_ray.trainer import metrics as registry
from collatz_ray.trainer.text import strict_json

FORMATS = ("table", "md", "json", "csv")


def key_metrics() -> list[str]:
    """The per-trial metrics of the CSV and of the JSON's trial list, as the metric
    registry (trainer/metrics.py) declares them."""
    return [m.key for m in registry.declared() if m.formats]


def trial_record(trial: Trial) -> dict[str, Any]:
    return {
        "trial_id": trial.trial_id,
        "status": trial.status,
        "ending": trial.ending.text,
        "epoch": trial.epoch,
        "params": trial.params,
        "error": trial.error,
        "recovered_from": trial.recovered_from,
        "metrics": {k: trial.metrics[k] for k in key_metrics() if k in trial.metrics},
    }


def best_record(trial: Trial | None) -> dict[str, Any] | None:
    if trial is None:
        return None
    diff, _problem = config_diff(trial)
    return {**trial_record(trial), "config": trial.config, "config_diff": diff, "metrics": trial.metrics}


def experiment_record(exp: Experiment) -> dict[str, Any]:
    best = best_trial(exp)
    return {
        "name": exp.name,
        "path": str(exp.path),
        "space": exp.settings.get("space_name"),
        "budget": dataclasses.asdict(exp.budget),
        "trials": len(exp.trials),
        "endings": ending_counts(exp),
        "best": None if best is None else trial_record(best),
        "importance": dataclasses.asdict(parameter_importances(exp)),
        "counterexamples": None if exp.bank is None else bank_summary(exp.bank),
        "replicates": _replicates_record(exp),
        "notes": exp.notes,
    }


def _replicates_record(exp: Experiment) -> dict[str, Any] | None:
    """A replication's configurations and verdict (None for a search)."""
    replication = replicates.replication(exp)
    return None if replication is None else replicates.record(replication)


def published_records() -> list[dict[str, Any]]:
    return [
        {
            "run": run,
            "change": change,
            "violations": v,
            "steps": PUBLISHED_STEPS,
            "pass_rate": p,
            "growth_weighted_pass_rate": g,
        }
        for run, change, v, p, g in PUBLISHED
    ]


def to_json(exps: Sequence[Experiment]) -> str:
    first = exps[0]
    records = [experiment_record(e) for e in exps]
    # Ray writes a NaN metric as bare NaN; strict_json makes it null.
    return strict_json(
        {
            "best": best_record(best_trial(first)),
            "trials": [trial_record(t) for t in ranked_trials(first)],
            "importance": records[0]["importance"],
            "replicates": _replicates_record(first),
            "published": published_records(),
            "experiments": records,
        },
        indent=1,
    )


def to_csv(exps: Sequence[Experiment]) -> str:
    rows = []
    for exp in exps:
        for rank, t in enumerate(ranked_trials(exp), 1):
            rows.append(
                {
                    "experiment": exp.name,
                    "rank": rank,
                    "trial_id": t.trial_id,
                    "status": t.status,
                    "ending": t.ending.text,
                    "epoch": t.epoch,
                    **{p.name: _csv_cell(t.params.get(p.name)) for p in exp.parameters},
                    **{k: t.metrics.get(k) for k in key_metrics()},
                    "error": t.error,
                    "recovered_from": t.recovered_from,
                }
            )
    # Nullable dtypes keep integer columns integers where some trials have no value yet.
    return pd.DataFrame(rows).convert_dtypes().to_csv(index=False)


def _csv_cell(value: Any) -> Any:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
