"""Replicating configurations: which ones to retrain, and with which seeds (no Ray).

A search ranks its trials on one seed each, and at this problem's scale seeds alone
move a trial's violations by about a fifth (ten seeds of one configuration at 64x64
and 2000 epochs spread from 99 to 119 of 429). A replication retrains chosen
configurations at the full budget, each with the same new seeds, as an experiment of
its own: its trials are ordinary trials whose sampled parameters are the
configuration's plus `seed`, so every reader of experiments reads it, and the plan
below, saved in its collatz_search.json, says which trials belong together and where
they came from.

The configurations are either a finished experiment's top K (by the results reader's
ranking, distinct configurations only) or given outright (a study of chosen values,
without a search before it). The seeds are the S smallest seeds that no source trial
trained with, so no replicate repeats a source trial and the choice is the same every
time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from collatz_ray.errors import UsageError, shown
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.text import setting_text

if TYPE_CHECKING:
    from collatz_ray.search.spaces import SearchSpace

#: The trainer setting a replicate varies.
SEED_KEY = "seed"
#: Fewer seeds give no spread to compare a lead with.
MIN_SEEDS = 2
#: Settings a given configuration may not set: the replication chooses the seeds, the
#: budget owns the run's length and evaluation interval.
NOT_GIVEN = (SEED_KEY, "epochs", "eval_interval")
#: How a source trial ended (results.read.Ending.kind) for its configuration to count:
#: it reached the full budget, or ASHA stopped it (it still ranks, after those that did).
FINISHED = ("completed", "stopped")
#: Settings a replicate may differ from its source trial in: the seed, and what the
#: trial itself sets for the machine it runs on.
OWN_SETTINGS = (SEED_KEY, "device", "eval_csv")


@dataclass(frozen=True)
class Configuration:
    """One configuration to replicate: trainer settings over the space's fixed ones
    (a source trial's sampled parameters), and the source trials that trained it."""

    params: dict[str, Any]
    source_trials: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        settings = (f"{k}={setting_text(v, digits=4)}" for k, v in self.params.items())
        return ", ".join(settings) or "(the space's settings)"

    @property
    def key(self) -> str:
        return params_key(self.params)


@dataclass(frozen=True)
class ReplicatePlan:
    """Every configuration trained once with each seed: len(configurations) x len(seeds)
    trials. `source` is the path of the experiment they came from, if any."""

    configurations: tuple[Configuration, ...]
    seeds: tuple[int, ...]
    source: str | None = None

    def points(self) -> list[dict[str, Any]]:
        """The trials' parameters, configuration by configuration."""
        return [{**c.params, SEED_KEY: seed} for c in self.configurations for seed in self.seeds]

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "seeds": list(self.seeds),
            "configurations": [
                {"params": c.params, "source_trials": list(c.source_trials)} for c in self.configurations
            ],
        }

    @classmethod
    def from_json(cls, data: Any, *, where: str) -> ReplicatePlan:
        """The plan saved in an experiment's settings, checked: a damaged one is one line."""

        def bad(what: str) -> UsageError:
            return UsageError(f"{where}: replicate: {what}")

        if not isinstance(data, dict):
            raise bad(f"expected a mapping, got {shown(data)}")
        seeds, configs, source = data.get("seeds"), data.get("configurations"), data.get("source")
        if not (isinstance(seeds, list) and seeds and all(_is_seed(s) for s in seeds)):
            raise bad(f"seeds: expected a list of integers >= 0, got {shown(seeds)}")
        if not (isinstance(configs, list) and configs):
            raise bad(f"configurations: expected a non-empty list, got {shown(configs)}")
        if source is not None and not isinstance(source, str):
            raise bad(f"source: expected a path, got {shown(source)}")
        out = []
        for i, config in enumerate(configs):
            params = config.get("params") if isinstance(config, dict) else None
            trials = config.get("source_trials", []) if isinstance(config, dict) else None
            if not (isinstance(params, dict) and SEED_KEY not in params):
                raise bad(
                    f"configurations[{i}].params: expected a mapping of settings without "
                    f"{SEED_KEY}, got {shown(params)}"
                )
            if not (isinstance(trials, list) and all(isinstance(t, str) for t in trials)):
                raise bad(
                    f"configurations[{i}].source_trials: expected a list of trial ids, got {shown(trials)}"
                )
            out.append(Configuration(params, tuple(trials)))
        return cls(tuple(out), tuple(seeds), source)


def params_key(params: Mapping[str, Any]) -> str:
    """One configuration's identity: its settings, in any order, lists as lists."""
    return json.dumps(params, sort_keys=True)


def check_seed_count(count: int) -> int:
    if count < MIN_SEEDS:
        raise UsageError(
            f"--seeds {count}: expected at least {MIN_SEEDS}; one seed has no spread to compare a lead with"
        )
    return count


def new_seeds(used: Iterable[int], count: int) -> tuple[int, ...]:
    """The `count` smallest seeds >= 0 not in `used`."""
    taken, seed = set(used), 0
    out: list[int] = []
    while len(out) < count:
        if seed not in taken:
            out.append(seed)
        seed += 1
    return tuple(out)


def top_configurations(ranked: Sequence[Any], *, top: int, experiment: str) -> tuple[Configuration, ...]:
    """The first `top` distinct configurations of `ranked` (finished source trials, best
    first, as results.read.Trial: trial_id and params), each with every source trial
    that trained it."""
    by_key: dict[str, list[Any]] = {}
    for trial in ranked:
        by_key.setdefault(params_key(_without_seed(trial.params)), []).append(trial)
    if top > len(by_key):
        raise UsageError(
            f"--top {top}: experiment {experiment} has {len(ranked)} finished "
            f"trial{'s' * (len(ranked) != 1)} ({len(by_key)} distinct "
            f"configuration{'s' * (len(by_key) != 1)})"
        )
    return tuple(
        Configuration(_without_seed(trials[0].params), tuple(t.trial_id for t in trials))
        for trials in list(by_key.values())[:top]
    )


def plan_from_experiment(
    ranked: Sequence[Any], space: SearchSpace, *, top: int, seeds: int, source: str
) -> ReplicatePlan:
    """Replicate the top `top` configurations of the experiment at `source` with `seeds`
    seeds none of its trials trained with. `ranked` is its trials best first, as
    results.report.ranked_trials gives them (results.read.Trial); those that finished
    (reached the full budget or were stopped by ASHA, with a score) count. `space` is
    the space it searched, at its budget.

    Refuses a source trial whose recorded config (train_config.json) the space no longer
    produces (an edited space file): its replicates would train something else."""
    check_seed_count(seeds)
    ranked = [t for t in ranked if t.ending.kind in FINISHED and "objective" in t.metrics]
    configurations = top_configurations(ranked, top=top, experiment=source)
    chosen = {t for c in configurations for t in c.source_trials}
    for trial in ranked:
        if trial.trial_id in chosen and trial.config is not None:
            _check_same(trial, space.trial_config(_without_seed(trial.params)).to_dict(), source)
    default = space.trial_config({}).seed
    used = {(trial.config or {}).get(SEED_KEY, trial.params.get(SEED_KEY, default)) for trial in ranked}
    return ReplicatePlan(configurations, new_seeds(used, seeds), source)


def given_plan(
    space: SearchSpace, configs: Sequence[Mapping[str, Any]], *, seeds: int, where: Sequence[str]
) -> ReplicatePlan:
    """Replicate configurations given outright (settings over `space`'s fixed ones),
    each checked as the trainer checks it; `where[i]` names configs[i] in errors. The
    seeds avoid the one each configuration trains with by default."""
    check_seed_count(seeds)
    out: list[Configuration] = []
    used: set[int] = set()
    for config, source in zip(configs, where):
        for key in config:
            if key in NOT_GIVEN:
                owner = "--seeds" if key == SEED_KEY else "the budget (--epochs)"
                raise UsageError(f"{source}: {key} is set by {owner}, not by a configuration")
        # The space's trial config with these settings over it, refused in one line naming `source`.
        trained = TrainConfig.from_dict(config, source=source, base=space.trial_config({}))
        used.add(trained.seed)
        plain = trained.to_dict()
        configuration = Configuration({key: plain[key] for key in config})
        if configuration.key in {c.key for c in out}:
            raise UsageError(f"{source}: the same configuration as an earlier one")
        out.append(configuration)
    return ReplicatePlan(tuple(out), new_seeds(used, seeds))


_NEXT_KEY = re.compile(r",(?=\s*[A-Za-z_]\w*\s*=)")


def parse_config_text(text: str, *, flag: str = "--config") -> dict[str, str]:
    """`lookahead=20,layers=16,16` -> {"lookahead": "20", "layers": "16,16"}: a comma
    starts a new setting only where a KEY= follows, so list values keep theirs. Values
    stay text; TrainConfig converts and checks them."""
    out: dict[str, str] = {}
    for part in _NEXT_KEY.split(text):
        key, equals, value = part.partition("=")
        key = key.strip()
        if not equals or not re.fullmatch(r"[A-Za-z_]\w*", key) or not value.strip():
            raise UsageError(f"{flag} {shown(text)}: expected KEY=VALUE[,KEY=VALUE...], got {shown(part)}")
        if key in out:
            raise UsageError(f"{flag} {shown(text)}: {key} given twice")
        out[key] = value.strip()
    return out


def _check_same(trial: Any, config: dict[str, Any], source: str) -> None:
    for key, value in config.items():
        recorded = trial.config.get(key, value)
        if key not in OWN_SETTINGS and recorded != value:
            raise UsageError(
                f"{source}: trial {trial.trial_id} trained with {key}={shown(recorded)}, "
                f"but the experiment's space now gives {shown(value)} (space.yaml edited?); "
                "its replicates would train something else"
            )


def _without_seed(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != SEED_KEY}


def _is_seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
