"""What a search minimises, and how its trials are ranked: one rule for the live search,
its final report and the summaries.

A trial's score is `objective`: a count of held-out trajectory violations plus a
tie-break in (0, 1) from the population's weak tail of margins. Which count is the
space's choice (`objective:` in its YAML): the log's 429 steps (`log`, the default, so
scores compare with the published runs), only the steps no training walk covers
(`unseen`), or the large-number trajectories (`big`); docs/method.md §8 says why.
ASHA stops weak trials early, and a stopped trial's last score comes from a smaller
budget, so trials that reached the full budget rank ahead of stopped ones; within each
group, lower score wins.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from collatz_ray.trainer import metrics as registry

METRIC = "objective"
MODE = "min"
#: The reported key that counts a trial's progress (ASHA's time attribute).
TIME_ATTR = "epoch"


class _Objectives(Mapping[str, str]):
    """The violation count each kind of objective minimises, by kind: read from the
    metric registry (trainer/metrics.py) whenever asked, so a metric declared there as
    an objective is one here too."""

    def __getitem__(self, kind: str) -> str:
        return registry.objectives()[kind].key

    def __iter__(self) -> Iterator[str]:
        return iter(registry.objectives())

    def __len__(self) -> int:
        return len(registry.objectives())


OBJECTIVES: Mapping[str, str] = _Objectives()
DEFAULT_OBJECTIVE = "log"


def objective_words(kind: str) -> str:
    """How summaries name what an objective of `kind` minimises (the kind itself when
    the registry no longer declares it)."""
    declared = registry.objectives().get(kind)
    return kind if declared is None or declared.objective is None else declared.objective.words


def objective(metrics: dict[str, Any], *, kind: str = DEFAULT_OBJECTIVE) -> float:
    """Violations (the count OBJECTIVES[kind]) + a tie-break in (0, 1) that falls as the
    5th-percentile population margin rises: a trial with fewer violations always ranks
    first, and among equal counts the one whose weak tail of margins is healthier wins."""
    tail = metrics.get("margin_5pct")
    tail = 0.0 if tail is None or not math.isfinite(tail) else tail
    return metrics[OBJECTIVES[kind]] + 0.5 - math.atan(tail) / math.pi


def rank_key(metrics: dict[str, Any], *, max_epochs: int) -> tuple[int, float]:
    score = metrics.get(METRIC)
    if score is None:
        return (2, float("inf"))
    reached = metrics.get(TIME_ATTR, 0) >= max_epochs
    return (0 if reached else 1, float(score))


def ranked(trials: Sequence[dict[str, Any]], *, max_epochs: int) -> list[dict[str, Any]]:
    """Trials (dicts with a `metrics` dict) best first; trials with no report go last."""
    return sorted(trials, key=lambda t: rank_key(t.get("metrics") or {}, max_epochs=max_epochs))
