"""A replication's summary (collatz_ray/search/replication.py): each configuration's
metrics over its seeds, and whether the best configuration's lead over the next is
larger than seed noise.

Only trials that reached the full budget count; the others are shown as seeds still to
come. Configurations are ranked by the mean of the count the experiment's objective
minimises (then by the mean objective). The lead is mean(next) - mean(best) of that
count, with the 95% interval of Welch's t (results/stats.py); it is larger than seed
noise when that interval excludes zero.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from collatz_ray.errors import UsageError
from collatz_ray.results.read import Experiment, Trial, is_number
from collatz_ray.results.stats import CONFIDENCE, Lead, Spread, lead, spread
from collatz_ray.search.objective import DEFAULT_OBJECTIVE, OBJECTIVES
from collatz_ray.search.replication import SEED_KEY, Configuration, ReplicatePlan, params_key
from collatz_ray.search.settings import SETTINGS_FILE
from collatz_ray.trainer import metrics as registry


def summarised(count_key: str) -> list[registry.Metric]:
    """The metrics a replication summarises, as the metric registry declares them (those
    no finished trial reported are left out), the ranking count first."""
    declared = [m for m in registry.declared() if m.replicates]
    return sorted(declared, key=lambda m: m.key != count_key)


def metric_label(key: str) -> str:
    metric = registry.metric_of(key)
    return key if metric is None else metric.label


def bounds(key: str) -> tuple[float, float]:
    """The values a metric can take: percentages 0..100, counts from 0."""
    return (0.0, 100.0) if _is_percent(key) else (0.0, math.inf)


def _is_percent(key: str) -> bool:
    metric = registry.metric_of(key)
    return metric is not None and metric.kind == registry.PERCENT


@dataclass
class Replicated:
    """One configuration's trials and its metrics over the finished ones."""

    configuration: Configuration
    trials: list[Trial]
    spreads: dict[str, Spread]

    @property
    def finished(self) -> list[Trial]:
        return [t for t in self.trials if t.ending.kind == "completed"]

    def values(self, key: str) -> list[float]:
        return [t.metrics[key] for t in self.finished if is_number(t.metrics.get(key))]


@dataclass
class Replication:
    seeds: tuple[int, ...]
    source: str | None
    #: The count configurations are ranked and compared by.
    count_key: str
    #: Best first.
    configurations: list[Replicated]
    lead: Lead | None

    @property
    def verdict(self) -> str:
        """The lead of the best configuration over the next, in words."""
        if len(self.configurations) < 2:
            return "Fewer than two configurations: no lead to judge."
        best, runner_up = self.configurations[:2]
        if self.lead is None:
            return (
                f"Lead not judged yet: both of the two best configurations need 2 finished seeds "
                f"(they have {len(best.finished)} and {len(runner_up.finished)})."
            )
        word = metric_label(self.count_key)
        noise = "larger than seed noise" if self.lead.beyond_noise else "within seed noise"
        return (
            f"Lead of {best.configuration.label} over {runner_up.configuration.label}: "
            f"{self.lead.difference:.1f} ± {self.lead.half_width:.1f} {word} "
            f"({CONFIDENCE:.0%} CI of the difference of means, Welch's t): {noise}."
        )


def replication(exp: Experiment) -> Replication | None:
    """The experiment's replication summary; None when it is not a replication."""
    data = exp.settings.get("replicate")
    if data is None:
        return None
    try:
        plan: ReplicatePlan | None = ReplicatePlan.from_json(data, where=str(exp.path / SETTINGS_FILE))
    except UsageError as err:
        _note(exp, f"{err}; trials grouped by their settings instead")
        plan = None
    groups: dict[str, Replicated] = {}
    if plan is not None:
        groups = {c.key: Replicated(c, [], {}) for c in plan.configurations}
    for trial in exp.trials:
        params = {k: v for k, v in trial.params.items() if k != SEED_KEY}
        key = params_key(params)
        if key not in groups:
            if plan is not None:
                _note(exp, f"trial {trial.trial_id}: settings in no configuration of the plan; left out")
                continue
            groups[key] = Replicated(Configuration(params), [], {})
        groups[key].trials.append(trial)
    count_key = OBJECTIVES.get(
        exp.settings.get("objective", DEFAULT_OBJECTIVE), OBJECTIVES[DEFAULT_OBJECTIVE]
    )
    for group in groups.values():
        group.spreads = {
            key: spread(group.values(key), bounds=bounds(key))
            for key in (m.key for m in summarised(count_key))
            if group.values(key)
        }
    ranked = sorted(groups.values(), key=lambda g: _rank(g, count_key))
    judged = lead(ranked[0].values(count_key), ranked[1].values(count_key)) if len(ranked) > 1 else None
    seeds = (
        plan.seeds
        if plan is not None
        else tuple(sorted({seed for t in exp.trials if isinstance(seed := t.params.get(SEED_KEY), int)}))
    )
    return Replication(seeds, plan.source if plan else None, count_key, ranked, judged)


def _note(exp: Experiment, text: str) -> None:
    """A note from reading, once however often the summary is built (text, JSON)."""
    if text not in exp.notes:
        exp.notes.append(text)


def _rank(group: Replicated, count_key: str) -> tuple[int, float, float]:
    counts, scores = group.values(count_key), group.values("objective")
    if not counts:
        return (1, math.inf, math.inf)
    return (0, sum(counts) / len(counts), sum(scores) / len(scores) if scores else math.inf)


# -- shown ---------------------------------------------------------------------------------
def number(value: float, key: str) -> str:
    return f"{value:.2f}" if _is_percent(key) else f"{value:.1f}"


def extremes(s: Spread, key: str) -> str:
    if _is_percent(key):
        return f"{s.lowest:.2f}..{s.highest:.2f}"
    return f"{s.lowest:g}..{s.highest:g}"


def configuration_lines(rep: Replication) -> str:
    """The configurations, best first, as a numbered list the table's # refers to:
    each with its settings and the source trials it came from."""
    lines = []
    for rank, group in enumerate(rep.configurations, 1):
        c = group.configuration
        trials = f"source trial{'s' * (len(c.source_trials) > 1)} {', '.join(c.source_trials)}"
        lines.append(f"{rank}. {c.label}" + (f" ({trials})" if c.source_trials else ""))
    return "\n".join(lines)


def table_rows(rep: Replication) -> list[list[str]]:
    """#, metric, seeds, mean, sd, min..max, CI: a row per metric, the configuration's
    number (of configuration_lines) on its first."""
    rows = []
    for rank, group in enumerate(rep.configurations, 1):
        done = f"{len(group.finished)}/{len(rep.seeds) or len(group.trials)}"
        first = [str(rank)]
        if not group.spreads:
            rows.append(first + ["-", done, "-", "-", "-", "-"])
        for key, s in group.spreads.items():
            rows.append(
                first
                + [
                    metric_label(key),
                    done,
                    number(s.mean, key),
                    "-" if s.std is None else number(s.std, key),
                    extremes(s, key),
                    "-" if s.ci is None else f"{number(s.ci[0], key)}..{number(s.ci[1], key)}",
                ]
            )
            first = [""]
    return rows


HEADERS = ["#", "metric", "seeds", "mean", "sd", "min..max", f"{CONFIDENCE:.0%} CI"]


def description(rep: Replication, exp: Experiment) -> str:
    source = f" from {rep.source}" if rep.source else ""
    seeds = ", ".join(map(str, rep.seeds))
    return (
        f"{len(rep.configurations)} configuration{'s' * (len(rep.configurations) != 1)}{source}, "
        f"each trained with seeds {seeds} to the full budget ({exp.budget.epochs} epochs). "
        f"Best first by mean {metric_label(rep.count_key)}; the CI is the t-interval of the mean "
        "over the finished seeds, cut to the metric's range."
    )


def record(rep: Replication) -> dict[str, Any]:
    """The replication as plain data (the JSON form)."""
    best_two = rep.configurations[:2]
    return {
        "seeds": list(rep.seeds),
        "source": rep.source,
        "ranked_by": rep.count_key,
        "confidence": CONFIDENCE,
        "configurations": [
            {
                "rank": rank,
                "label": g.configuration.label,
                "params": g.configuration.params,
                "source_trials": list(g.configuration.source_trials),
                "trials": [t.trial_id for t in g.trials],
                "finished": len(g.finished),
                "metrics": {
                    key: {**dataclasses.asdict(s), "ci": None if s.ci is None else list(s.ci)}
                    for key, s in g.spreads.items()
                },
            }
            for rank, g in enumerate(rep.configurations, 1)
        ],
        "lead": None
        if rep.lead is None
        else {
            "best": best_two[0].configuration.label,
            "next": best_two[1].configuration.label,
            **dataclasses.asdict(rep.lead),
            "beyond_noise": rep.lead.beyond_noise,
        },
        "verdict": rep.verdict,
    }
