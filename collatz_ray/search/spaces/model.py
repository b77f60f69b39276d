"""Search spaces: which trainer settings a hyperparameter search varies, and over what.

A search space holds one search's question: the budget ASHA may spend (budget.py), the
settings held fixed, and the distributions Optuna's TPE samples, with conditions
(`when`) so that, say, mining knobs are only sampled when mining is on. A SearchSpace
checks how its parts fit together against the same TrainConfig the trainer validates,
so a typo or an impossible value is refused in one line before any cluster time is
spent instead of failing trial after trial. Files become spaces in parsing.py; the
presets that shrink a space are in presets.py.

This module speaks Optuna's trial interface (suggest_*) but does not import Ray: the
Ray side hands `SearchSpace.suggest` to OptunaSearch as its define-by-run function
and turns what a trial sampled into a TrainConfig with `SearchSpace.trial_config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collatz_ray.errors import UsageError, shown
from collatz_ray.search.objective import DEFAULT_OBJECTIVE
from collatz_ray.search.spaces import presets
from collatz_ray.search.spaces._refusal import did_you_mean, refusal
from collatz_ray.search.spaces.budget import BUDGET_KEYS, Budget, Origin, build_budget
from collatz_ray.trainer.config import TrainConfig

#: The distributions of a range parameter.
DISTRIBUTIONS = ("int_uniform", "uniform", "log_uniform")

#: Each TrainConfig field's annotation: what a setting takes.
SETTING_TYPES = typing.get_type_hints(TrainConfig)


def base_type(name: str) -> type:
    """int, float, bool, str or tuple: a field's type without Optional."""
    annotation = SETTING_TYPES[name]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    return typing.get_origin(annotation) or annotation


def optuna_choice(value: Any) -> Any:
    """An Optuna categorical choice: Optuna stores only None/bool/int/float/str, so a
    list-valued choice (layers) travels as "128,128,128"."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def plain_value(value: Any) -> Any:
    """Values as YAML/JSON have them (Ray saves trial configs as JSON): lists, not tuples."""
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Parameter:
    """One searched trainer setting.

    `distribution` is "categorical" (one of `choices`), "constant" (`choices` holds the
    one value), or a range from `low` to `high`: "int_uniform" (optionally on a `step`
    grid), "uniform" or "log_uniform", drawn as integers when the setting is an integer.
    Values are held as TrainConfig holds them (tuples for lists). `when` is a tuple of
    (setting, accepted values) pairs that must all hold for the parameter to be sampled.
    """

    name: str
    distribution: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    step: int | None = None
    when: tuple[tuple[str, tuple], ...] = ()

    @property
    def is_range(self) -> bool:
        return self.distribution in DISTRIBUTIONS

    def bounds(self) -> tuple[tuple[str, Any], ...]:
        """(key, value) pairs which, each a valid setting, make every sample valid."""
        if self.distribution == "constant":
            return (("value", self.choices[0]),)
        if self.distribution == "categorical":
            return tuple((f"values[{i}]", c) for i, c in enumerate(self.choices))
        return (("min", self.low), ("max", self.high))

    def can_take(self, value: Any) -> bool:
        if not self.is_range:
            return value in self.choices
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        assert self.low is not None and self.high is not None  # a range has both ends
        on_grid = self.step is None or (value - self.low) % self.step == 0
        return self.low <= value <= self.high and on_grid

    def active(self, context: Mapping[str, Any]) -> bool:
        """Whether every `when` clause holds; a setting absent from `context` (a
        parameter whose own condition failed) satisfies none."""
        return all(key in context and context[key] in accepted for key, accepted in self.when)

    def sample(self, trial: Any) -> Any:
        """Draw this parameter from an Optuna trial, in TrainConfig's form."""
        if self.distribution == "constant":
            return self.choices[0]
        if self.distribution == "categorical":
            encoded = [optuna_choice(c) for c in self.choices]
            return self.choices[encoded.index(trial.suggest_categorical(self.name, encoded))]
        log = self.distribution == "log_uniform"
        if base_type(self.name) is int:
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=log)
        return trial.suggest_float(self.name, self.low, self.high, log=log)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space; build it with `load_space`.

    Constructing one checks how its parts fit together (conditions, fixed versus
    searched settings, every value against TrainConfig) and puts `parameters` in
    sampling order: file order, except that a parameter comes after those its `when`
    names. That order is what makes `suggest` deterministic.
    """

    name: str
    path: Path
    description: str
    budget: Budget
    fixed: dict[str, Any]
    parameters: tuple[Parameter, ...]
    #: Budget keys the file left out (they hold DEFAULT_BUDGET's values), to name them
    #: as defaults in errors. A default, so that pickles of older experiments load.
    budget_defaults: tuple[str, ...] = ()
    #: Which violation count ASHA and TPE minimise (search/objective.py OBJECTIVES).
    objective: str = DEFAULT_OBJECTIVE

    def __post_init__(self) -> None:
        self._check_conditions()
        # Frozen, but the order is part of the value: set it once, here.
        object.__setattr__(self, "parameters", self._dependency_order())
        base = self._fixed_config()
        for p in self.parameters:
            for key, value in p.bounds():
                TrainConfig.from_dict(
                    {p.name: value}, source=f"{self.path}: parameters.{p.name}.{key}", base=base
                )

    # -- sampling -------------------------------------------------------------------
    def suggest(self, trial: Any) -> dict[str, Any]:
        """Optuna define-by-run body: sample every parameter whose condition holds.

        Returns the sampled values as TrainConfig takes them, lists as lists. (Ray's
        OptunaSearch merges this dict over the raw values it captured from the
        suggest_* calls, so the decoded values are what a trial's config holds.)
        """
        context = dict(self.fixed)
        sampled: dict[str, Any] = {}
        for p in self.parameters:
            if p.active(context):
                context[p.name] = p.sample(trial)
                sampled[p.name] = plain_value(context[p.name])
        return sampled

    def trial_config(self, params: Mapping[str, Any], *, source: str | None = None) -> TrainConfig:
        """The TrainConfig of one trial: fixed settings, the budget's epochs and
        eval_interval, then the sampled `params`. `source` names where `params` came
        from in an error line (default: this space's trial)."""
        values = {
            **self.fixed,
            "epochs": self.budget.epochs,
            "eval_interval": self.budget.eval_interval,
            **params,
        }
        return TrainConfig.from_dict(values, source=source or f"{self.path}: trial")

    # -- variants -------------------------------------------------------------------
    def with_budget(self, **overrides: int | None) -> SearchSpace:
        """The same space with some budget fields replaced (None keeps the field), as
        given: nothing is scaled (collatz_ray.search.plan sizes a search from flags)."""
        for key in overrides:
            if key not in BUDGET_KEYS:
                raise refusal(
                    self.path, f"budget.{key}", f"unknown budget key{did_you_mean(key, BUDGET_KEYS)}"
                )
        values = dataclasses.asdict(self.budget) | {k: v for k, v in overrides.items() if v is not None}
        budget = build_budget(values, self.budget_origins())
        return dataclasses.replace(self, budget=budget)

    def budget_origins(self) -> dict[str, Origin]:
        """Where each budget value of this space came from: its file, or the loader's
        default for a key the file left out."""
        return {
            key: Origin("default" if key in self.budget_defaults else "file", str(self.path))
            for key in BUDGET_KEYS
        }

    def smoke(self) -> SearchSpace:
        """The same question at toy scale (`presets.smoke`)."""
        return presets.smoke(self)

    def laptop(self) -> SearchSpace:
        """The same question at a size two CPUs finish in about an hour (`presets.laptop`)."""
        return presets.laptop(self)

    def scaled(self, preset: str | None) -> SearchSpace:
        """This space at a preset's scale (PRESETS: "smoke", "laptop"), or as it is."""
        return presets.scaled(self, preset)

    # -- checks ---------------------------------------------------------------------
    def _check_conditions(self) -> None:
        searched = {p.name: p for p in self.parameters}
        for p in self.parameters:
            where = f"parameters.{p.name}"
            if p.name in self.fixed:
                raise refusal(self.path, where, "also set under fixed; a setting is either fixed or searched")
            for key, accepted in p.when:
                clause = f"{where}.when.{key}"
                if key == p.name:
                    raise refusal(self.path, clause, "a parameter cannot be conditional on itself")
                if key in self.fixed:
                    if self.fixed[key] not in accepted:
                        raise refusal(
                            self.path,
                            clause,
                            f"can never hold: fixed.{key} is "
                            f"{shown(plain_value(self.fixed[key]))}, "
                            f"not one of {shown([plain_value(a) for a in accepted])}",
                        )
                elif key in searched:
                    if not any(searched[key].can_take(a) for a in accepted):
                        raise refusal(
                            self.path,
                            clause,
                            f"can never hold: parameters.{key} never takes "
                            f"{shown([plain_value(a) for a in accepted])}",
                        )
                else:
                    close = difflib.get_close_matches(key, [*self.fixed, *searched], n=1)
                    hint = f"did you mean {close[0]!r}?" if close else "add it under fixed or parameters"
                    raise refusal(
                        self.path,
                        clause,
                        f"{shown(key)} is neither a parameter nor a fixed key of this space; {hint}",
                    )

    def _dependency_order(self) -> tuple[Parameter, ...]:
        searched = {p.name for p in self.parameters}
        placed: list[Parameter] = []
        pending = list(self.parameters)
        while pending:
            done = {p.name for p in placed}
            ready = next((p for p in pending if all(k in done or k not in searched for k, _ in p.when)), None)
            if ready is None:
                names = ", ".join(p.name for p in pending)
                raise refusal(
                    self.path, f"parameters.{pending[0].name}.when", f"circular conditions among {names}"
                )
            pending.remove(ready)
            placed.append(ready)
        return tuple(placed)

    def _fixed_config(self) -> TrainConfig:
        """TrainConfig of the fixed settings and the budget, the base every parameter
        value is checked on; a bad value is reported under its fixed key."""
        values = {**self.fixed, "epochs": self.budget.epochs, "eval_interval": self.budget.eval_interval}
        where = "fixed"
        if not _is_valid(values):
            # A cross-field rule (mine_pool >= mine_count) involves two keys: blame the
            # first one without which the rest is valid.
            where = next(
                (
                    f"fixed.{key}"
                    for key in self.fixed
                    if _is_valid({k: v for k, v in values.items() if k != key})
                ),
                "fixed",
            )
        return TrainConfig.from_dict(values, source=f"{self.path}: {where}")


def _is_valid(values: Mapping[str, Any]) -> bool:
    try:
        TrainConfig.from_dict(values)
    except UsageError:
        return False
    return True
