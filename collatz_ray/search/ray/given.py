"""A Tune searcher that suggests given configs, each once, in order: a replication's
trials (collatz_ray/search/replication.py) instead of TPE's suggestions.

Tune's BasicVariantGenerator takes `points_to_evaluate` too, but only for keys its
param_space declares, and a replication's configurations may set different keys (a
mining knob in one, not in another); this searcher hands each config to the trial as
it is, so a trial's params.json holds exactly its configuration and seed. Its state
(the configs and how many were handed out) is saved with Tune's own, so a resumed
replication starts none twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ray.tune.search import Searcher

from collatz_ray.search.objective import METRIC, MODE


class GivenConfigs(Searcher):
    def __init__(self, configs: Sequence[dict[str, Any]]) -> None:
        super().__init__(metric=METRIC, mode=MODE)
        self._configs = [dict(c) for c in configs]
        self._handed_out = 0

    # Ray's annotation leaves out the FINISHED its own docstring tells a searcher to return.
    def suggest(self, trial_id: str) -> dict[str, Any] | str:  # type: ignore[override]
        if self._handed_out >= len(self._configs):
            return Searcher.FINISHED
        self._handed_out += 1
        return dict(self._configs[self._handed_out - 1])

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Nothing to learn: the configs are fixed."""

    def get_state(self) -> dict[str, Any]:
        return {"configs": self._configs, "handed_out": self._handed_out}

    def set_state(self, state: dict[str, Any]) -> None:
        self._configs, self._handed_out = list(state["configs"]), int(state["handed_out"])

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as handle:
            json.dump(self.get_state(), handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as handle:
            self.set_state(json.load(handle))
