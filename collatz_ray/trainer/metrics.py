"""The metric registry: every number a trainer report carries, declared once.

A declaration says what a metric is (its key, how people read it, what kind of value it
holds, which way is better, how a value is written) and where it shows: the live status
block of a search, the results' trial table and held-out sets, the CSV and JSON
formats, a replication's summary, and whether a search may minimise it. Every view
reads this table, so **a new metric goes here**: one declaration beside its
computation (trainer/evaluation.py, trainer/heldout.py, trainer/loop.py) and it is
checked when results are read and shown wherever its declaration says.

Metrics that come one per test seed or per bit length are families: their key names
the part in braces (`traj_{seed}_violations`), and `members` finds the parts a report
holds. The order of the declarations is the order of every view's columns.

Torch-free and free of the search and the results reader, so every layer can import it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

#: What a metric's value must be.
COUNT = "count"  # an integer >= 0
NUMBER = "number"  # any int or float (null where there is none, e.g. no violation's margin)
PERCENT = "percent"  # a number from 0 to 100
STEP_LIST = "step list"  # a list of step numbers, always a list (empty when none)
#: Which way is better, for metrics that judge a model.
LOWER, HIGHER = "lower", "higher"

_PART = re.compile(r"\{(\w+)\}")


def is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class Column:
    """A metric's column in a view: its heading and, where it differs from the metric's
    own, the format of a value."""

    heading: str
    fmt: str | None = None
    #: Shown only when some trial reported it (metrics added after older experiments ran).
    when_reported: bool = False


@dataclass(frozen=True)
class Objective:
    """A violation count a search may minimise (`objective:` in a space's YAML)."""

    #: The name a space gives it.
    kind: str
    #: How the ranking note names what the search minimised.
    words: str


@dataclass(frozen=True)
class Metric:
    #: The reported key; a family's names its part in braces: traj_{seed}_violations.
    key: str
    #: What a person reads it as (a family's may name the part: "violations of seed {seed}").
    label: str
    kind: str
    #: Which way is better: LOWER, HIGHER, or None for sizes and bookkeeping.
    better: str | None = None
    #: How one value is written (format spec; a count as it is).
    fmt: str = ""
    #: For a violation count: the key of the steps it counts among (read as 58/429).
    steps: str | None = None
    #: Every report has it; a report without it (or with null) is skipped when read.
    required: bool = False
    #: Its column in the live status block of a search.
    live: Column | None = None
    #: Its column in the results' trial table.
    table: Column | None = None
    #: A row of the results' held-out sets table (violations, steps, share), by this label.
    heldout: str | None = None
    #: A column of the CSV and of the JSON's trial records.
    formats: bool = False
    #: Summarised over a replication's seeds (mean, sd, interval), by its label.
    replicates: bool = False
    #: Set when a search may minimise it.
    objective: Objective | None = None

    def __post_init__(self) -> None:
        if self.objective is not None and (self.kind != COUNT or self.better != LOWER):
            raise ValueError(f"{self.key}: an objective is a count where lower is better")
        if self.kind not in (COUNT, NUMBER, PERCENT, STEP_LIST):
            raise ValueError(f"{self.key}: unknown kind {self.kind!r}")

    @property
    def family(self) -> str | None:
        """The name of the part a family's key varies by (seed, bits); None for one key."""
        found = _PART.search(self.key)
        return found.group(1) if found else None

    def part_of(self, key: str) -> int | None:
        """The part (seed, bit length) of `key` when it is a member of this family."""
        if self.family is None:
            return None
        before, _name, after = _PART.split(self.key)
        found = re.fullmatch(re.escape(before) + r"(\d+)" + re.escape(after), key)
        return int(found.group(1)) if found else None

    def members(self, metrics: Mapping[str, Any]) -> list[int]:
        """A family's parts that `metrics` holds, in the report's order."""
        return [part for part in map(self.part_of, metrics) if part is not None]

    def member(self, part: int) -> Metric:
        """The one metric of a family for `part` (its key, steps and labels filled in)."""
        if self.family is None:
            return self
        placeholder = f"{{{self.family}}}"

        def fill(text: str) -> str:
            return text.replace(placeholder, str(part))

        return dataclasses.replace(
            self,
            key=fill(self.key),
            label=fill(self.label),
            steps=None if self.steps is None else fill(self.steps),
            heldout=None if self.heldout is None else fill(self.heldout),
        )

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` as this metric's (None when nothing is)."""
        if value is None and not self.required and self.kind != STEP_LIST:
            return None
        if self.kind == COUNT and not is_count(value):
            return "not an integer >= 0"
        if self.kind in (NUMBER, PERCENT) and not is_number(value):
            return "not a number"
        if self.kind == STEP_LIST and not (isinstance(value, list) and all(map(is_count, value))):
            return "not a list of step numbers"
        return None

    def cell(self, metrics: Mapping[str, Any], *, fmt: str | None = None, with_steps: bool = True) -> str:
        """Its value in `metrics` as a view writes it (in `fmt`, else its own format): '-'
        when absent or not a finite number; a violation count as violations/steps."""
        if self.steps is not None and with_steps:
            if self.key not in metrics:
                return "-"
            return f"{metrics[self.key]}/{metrics.get(self.steps, '?')}"
        value = metrics.get(self.key)
        if not (is_number(value) and math.isfinite(value)):
            return "-"
        return format(value, self.fmt if fmt is None else fmt)


# -- the declarations: a new metric goes here ---------------------------------------------
_DECLARED = (
    # Trajectory metrics, the log's held-out steps (trainer/evaluation.py).
    Metric(
        "traj_total_violations",
        "violations",
        COUNT,
        LOWER,
        steps="traj_total_steps",
        required=True,
        live=Column("viol"),
        table=Column("violations"),
        heldout="the log's held-out steps",
        formats=True,
        replicates=True,
        objective=Objective("log", "violations of the log's held-out steps"),
    ),
    Metric("traj_total_steps", "steps of the held-out trajectories", COUNT, required=True, formats=True),
    # The unseen steps and the large numbers (trainer/heldout.py, docs/method.md §8).
    Metric(
        "traj_unseen_violations",
        "unseen violations",
        COUNT,
        LOWER,
        steps="traj_unseen_steps",
        table=Column("unseen", when_reported=True),
        heldout="unseen steps",
        formats=True,
        replicates=True,
        objective=Objective("unseen", "violations of the unseen held-out steps"),
    ),
    Metric("traj_unseen_steps", "unseen steps", COUNT, formats=True),
    Metric(
        "traj_big_{bits}_violations",
        "violations of the {bits}-bit seeds",
        COUNT,
        LOWER,
        steps="traj_big_{bits}_steps",
        heldout="{bits}-bit seeds",
    ),
    Metric("traj_big_{bits}_steps", "steps of the {bits}-bit seeds", COUNT),
    Metric(
        "traj_big_violations",
        "large-number violations",
        COUNT,
        LOWER,
        steps="traj_big_steps",
        table=Column("big", when_reported=True),
        heldout="large numbers, all",
        formats=True,
        replicates=True,
        objective=Objective("big", "violations along the large-number trajectories"),
    ),
    Metric("traj_big_steps", "large-number steps", COUNT, formats=True),
    # Per test seed (trainer/evaluation.py).
    Metric("traj_{seed}_violations", "violations of seed {seed}", COUNT, LOWER, steps="traj_{seed}_length"),
    Metric("traj_{seed}_length", "steps of seed {seed}", COUNT),
    Metric("traj_{seed}_worst", "worst margin along seed {seed}", NUMBER, HIGHER, ".5f"),
    Metric("traj_{seed}_violation_steps", "violating steps of seed {seed}", STEP_LIST),
    Metric("traj_{seed}_growth_violations", "violations on growth steps of seed {seed}", COUNT, LOWER),
    Metric("traj_violation_rate", "share of held-out steps violated", NUMBER, LOWER, ".4f"),
    Metric("traj_growth_violations", "violations on growth steps", COUNT, LOWER, steps="traj_growth_steps"),
    Metric("traj_growth_steps", "growth steps", COUNT),
    Metric("traj_decay_violations", "violations on decay steps", COUNT, LOWER, steps="traj_decay_steps"),
    Metric("traj_decay_steps", "decay steps", COUNT),
    Metric("traj_nonfinite", "held-out values where V is nan or inf", COUNT, LOWER),
    # Population metrics on the evaluation set (trainer/evaluation.py).
    Metric(
        "pass_rate",
        "pass %",
        PERCENT,
        HIGHER,
        ".2f",
        required=True,
        live=Column("pass%"),
        table=Column("pass %"),
        formats=True,
        replicates=True,
    ),
    # The failing rows as a count: the evaluation set is a fixed random sample of odd n
    # (uniform in bit length, 2 to 128 bits), so this is a sample of the exact scan
    # (docs/studies/model-size-small), at no cost beyond the evaluation itself.
    Metric(
        "eval_violations",
        "evaluation-set failures",
        COUNT,
        LOWER,
        steps="n_total",
        objective=Objective("eval", "failures on the evaluation set (a random sample of odd n)"),
    ),
    Metric("weighted_pass_rate", "weighted pass %", PERCENT, HIGHER, ".2f", required=True, formats=True),
    Metric("growth_pass_rate", "growth pass %", PERCENT, HIGHER, ".2f", required=True, formats=True),
    Metric(
        "growth_weighted_pass_rate",
        "growth-weighted pass %",
        PERCENT,
        HIGHER,
        ".2f",
        required=True,
        live=Column("grwtd%"),
        table=Column("grwtd %"),
        formats=True,
        replicates=True,
    ),
    Metric("growth_margin_mean", "growth margin mean", NUMBER, HIGHER, ".5f"),
    Metric("growth_margin_min", "growth margin min", NUMBER, HIGHER, ".5f"),
    Metric("margin_mean", "margin mean", NUMBER, HIGHER, ".5f"),
    Metric("margin_median", "margin median", NUMBER, HIGHER, ".5f"),
    Metric("margin_min", "margin min", NUMBER, HIGHER, ".5f"),
    Metric("margin_5pct", "5th-percentile margin", NUMBER, HIGHER, ".5f", formats=True),
    Metric("n_total", "evaluation rows", COUNT),
    Metric("n_growth", "evaluation growth rows", COUNT),
    Metric("n_nonfinite", "evaluation margins where V is nan or inf", COUNT, LOWER),
    # The training loop's own (trainer/loop.py).
    Metric("loss", "loss", NUMBER, LOWER, ".5f", required=True, formats=True),
    Metric("beta", "anchor beta", NUMBER, fmt=".4g"),
    Metric("lr", "learning rate", NUMBER, fmt=".3g"),
    Metric("seconds", "seconds since the run started", NUMBER, fmt=".1f"),
    Metric("epochs_per_second", "epochs per second", NUMBER, HIGHER, ".1f"),
    Metric("samples_per_second", "samples per second", NUMBER, HIGHER, ".1f"),
    Metric("mined", "mined numbers in the pool", COUNT),
    # The search's score of a report (search/objective.py computes it).
    Metric(
        "objective",
        "objective",
        NUMBER,
        LOWER,
        ".4f",
        live=Column("obj", ".3f"),
        table=Column("objective"),
        formats=True,
    ),
)

#: Every metric by its key (a family's by its key with braces), in the views' order.
METRICS: dict[str, Metric] = {m.key: m for m in _DECLARED}


def declared() -> list[Metric]:
    return list(METRICS.values())


def metric_of(key: str) -> Metric | None:
    """The declaration `key` is reported under (a family member's own, filled in)."""
    if key in METRICS:
        return METRICS[key]
    for metric in METRICS.values():
        part = metric.part_of(key)
        if part is not None:
            return metric.member(part)
    return None


def objectives() -> dict[str, Metric]:
    """The counts a search may minimise, by the name a space gives each."""
    return {m.objective.kind: m for m in METRICS.values() if m.objective is not None}
