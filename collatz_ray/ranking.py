"""How trials are ranked, in one place for the search's report and the summaries.

A trial's score is its last reported `objective` (held-out trajectory violations plus a
margin tie-break in (0, 1), see ray_adapter.objective). ASHA stops weak trials early, and
a stopped trial's last score comes from a smaller budget, so trials that reached the
full budget rank ahead of stopped ones; within each group, lower score wins.
"""

from __future__ import annotations

from typing import Any, Sequence


def rank_key(metrics: dict[str, Any], *, max_epochs: int) -> tuple[int, float]:
    score = metrics.get("objective")
    if score is None:
        return (2, float("inf"))
    reached = metrics.get("epoch", 0) >= max_epochs
    return (0 if reached else 1, float(score))


def ranked(trials: Sequence[dict[str, Any]], *, max_epochs: int) -> list[dict[str, Any]]:
    """Trials (dicts with a `metrics` dict) best first; trials with no report go last."""
    return sorted(trials, key=lambda t: rank_key(t.get("metrics") or {}, max_epochs=max_epochs))
