"""Search spaces: which trainer settings a hyperparameter search varies, and over what.

A search space is a YAML file in search_spaces/ (the format is documented in
docs/spaces.md). It holds one search's question: the budget ASHA may spend,
the settings held fixed, and the distributions Optuna's TPE samples, with conditions
(`when`) so that, say, mining knobs are only sampled when mining is on. Everything is
checked when the file is loaded, against the same TrainConfig the trainer validates, so
a typo or an impossible value is refused in one line before any cluster time is spent
instead of failing trial after trial.

This module speaks Optuna's trial interface (suggest_*) but does not import Ray: the
Ray side hands `SearchSpace.suggest` to OptunaSearch as its define-by-run function
and turns what a trial sampled into a TrainConfig with `SearchSpace.trial_config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collatz_ray._yaml import load_yaml
from collatz_ray.errors import SHOWN_CHARS, UsageError, shown
from collatz_ray.search.objective import DEFAULT_OBJECTIVE, OBJECTIVES
from collatz_ray.trainer.bank import read_bank
from collatz_ray.trainer.config import MAX_INT, TrainConfig, coerce


def _shipped_spaces_dir() -> Path:
    """search_spaces/ of an installed wheel (packaged inside collatz_ray), else the one at
    the top of the repository (a checkout or an editable install)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "search_spaces"
    return installed if installed.is_dir() else package.parent / "search_spaces"


#: Where named spaces live.
SPACES_DIR = _shipped_spaces_dir()

TOP_LEVEL_KEYS = ("description", "objective", "budget", "fixed", "parameters")
BUDGET_KEYS = ("epochs", "eval_interval", "grace_epochs", "reduction_factor", "num_samples")
#: TrainConfig fields the budget owns: the search scheduler must know them, so a space
#: sets them under `budget` and nowhere else.
BUDGET_OWNED = ("epochs", "eval_interval")
#: The setting that names a file (a counterexample bank), checked when a space loads.
BANK_SETTING = "hard_seed_bank"
PARAMETER_KEYS = ("values", "value", "distribution", "min", "max", "step", "when")
DISTRIBUTIONS = ("int_uniform", "uniform", "log_uniform")

#: The largest budget `SearchSpace.smoke` leaves: a few evaluations of a tiny model,
#: about a minute per trial on a 2-core CPU.
SMOKE_BUDGET_MAX = {"epochs": 80, "eval_interval": 20, "grace_epochs": 40, "num_samples": 4}
#: Epoch counts that place events within a run; smoke() scales them with the epochs so
#: that what happens at 40% of a real run happens at 40% of the smoke run.
SCHEDULE_FIELDS = ("decay_start", "decay_len", "ramp_len", "mine_start", "mine_interval")
#: Per-batch and per-mining-round sizes smoke() caps, so a CPU gets through them.
SMOKE_CAPS = {"batch_size": 128, "mine_pool": 256, "mine_count": 32}

#: The largest budget `SearchSpace.laptop` leaves. Unlike smoke's, eval_interval and
#: grace_epochs are not capped but scaled with the epochs (same evaluations, same rung
#: positions), and reduction_factor is kept: the search keeps its shape. Chosen from
#: measured epoch rates on 2 CPUs (docs/search.md, "--scale laptop"): about 30 to 60
#: minutes for any shipped space.
LAPTOP_BUDGET_MAX = {"epochs": 50_000, "num_samples": 24}
#: laptop() scales lr_patience too (ReduceLROnPlateau's patience is an epoch count, so a
#: half-length run would otherwise lower its learning rate half as often); smoke() leaves
#: it, its runs being far shorter than one patience anyway.
LAPTOP_SCHEDULE_FIELDS = SCHEDULE_FIELDS + ("lr_patience",)
#: laptop() caps the batch only: a mining round costs a few percent of a run even with
#: the default pool of 5000 (measured), and mine_count sets how fast mined numbers fill
#: the hard pool, which is what the mining space asks about.
LAPTOP_CAPS = {"batch_size": 256}
#: laptop() divides hidden widths above LAPTOP_MIN_WIDTH by this (not below it), so the
#: log's 2048...64 stack of 4.59M parameters becomes 256...16 (about 0.1M).
LAPTOP_WIDTH_DIVISOR = 8
LAPTOP_MIN_WIDTH = 16

_HINTS = typing.get_type_hints(TrainConfig)
_DEFAULTS = TrainConfig()

#: What a budget key the space leaves out gets: the trainer's own run length and
#: evaluation interval, a grace period of a fifth of the run (the shipped spaces' ratio,
#: see docs/spaces.md), rungs keeping one trial in three, and 24 trials (TPE's 10
#: random start-up trials, then 14 guided ones). Left-out eval_interval and
#: grace_epochs follow the file's epochs the way --epochs scales them: a file with
#: `epochs: 10000` alone is evaluated every 500 and first judged at 2000.
DEFAULT_BUDGET = {
    "epochs": _DEFAULTS.epochs,
    "eval_interval": _DEFAULTS.eval_interval,
    "grace_epochs": _DEFAULTS.epochs // 5,
    "reduction_factor": 3,
    "num_samples": 24,
}


def _base_type(name: str) -> type:
    """int, float, bool, str or tuple: a field's type without Optional."""
    annotation = _HINTS[name]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    return typing.get_origin(annotation) or annotation


def _fail(path: Path, where: str, what: str) -> UsageError:
    # `where` is a key path such as parameters.<name>, and a name is whatever the file held.
    if len(where) > 2 * SHOWN_CHARS:
        where = where[: 2 * SHOWN_CHARS - 3] + "..."
    return UsageError(f"{path}: {where}: {what}")


def _did_you_mean(word: object, options: typing.Iterable[str]) -> str:
    options = list(options)
    close = difflib.get_close_matches(str(word), options, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; expected one of: {', '.join(options)}"


def optuna_choice(value: Any) -> Any:
    """An Optuna categorical choice: Optuna stores only None/bool/int/float/str, so a
    list-valued choice (layers) travels as "128,128,128"."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def plain_value(value: Any) -> Any:
    """Values as YAML/JSON have them (Ray saves trial configs as JSON): lists, not tuples."""
    return list(value) if isinstance(value, tuple) else value


# -- the model -----------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """What ASHA may spend. Each trial trains at most `epochs` and reports every
    `eval_interval`; none is stopped before `grace_epochs`; each ASHA rung keeps one
    trial in `reduction_factor`; `num_samples` trials in all."""

    epochs: int
    eval_interval: int
    grace_epochs: int
    reduction_factor: int
    num_samples: int

    def __post_init__(self) -> None:
        for key in BUDGET_KEYS:
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"budget.{key}: expected an integer >= 1, got {shown(value)}")
            if value > MAX_INT:
                raise UsageError(f"budget.{key}: expected at most {MAX_INT}, got {shown(value)}")
        if self.eval_interval > self.epochs:
            raise UsageError(
                f"budget.eval_interval: expected at most epochs ({self.epochs}), got {self.eval_interval}"
            )
        if self.grace_epochs > self.epochs:
            raise UsageError(
                f"budget.grace_epochs: expected at most epochs ({self.epochs}), got {self.grace_epochs}"
            )
        if self.reduction_factor < 2:
            raise UsageError(
                f"budget.reduction_factor: expected an integer >= 2, got {self.reduction_factor}"
            )

    def rungs(self) -> list[int]:
        """ASHA's milestones below the full run (Ray also keeps one at `epochs` when a
        power lands there, which stops nothing)."""
        return asha_rungs(
            epochs=self.epochs, grace_epochs=self.grace_epochs, reduction_factor=self.reduction_factor
        )

    @property
    def evaluations(self) -> int:
        """Evaluations of a full trial: every eval_interval, and at the end."""
        return -(-self.epochs // self.eval_interval)


@dataclass(frozen=True)
class Origin:
    """Where a budget value came from, so that an error names what the user typed: a
    flag (`--eval-interval 5000`), a key of a space file, a default the file left to
    the loader, a preset (`--scale laptop`) or a resumed experiment's saved settings.
    `where` is the flag, the file's path, the preset's flag or the experiment's name."""

    kind: str  # "flag", "file", "default", "preset", "saved", "scaled"
    where: str

    def subject(self, key: str, value: int) -> str:
        """How a message about this value starts; a flag shows its value, the others
        end the message with ', got V' (see `got`)."""
        if self.kind == "flag":
            return f"{self.where} {shown(value)}"
        if self.kind == "preset":
            return f"{self.where}: budget.{key}"
        if self.kind == "saved":
            return f"experiment {self.where}: budget.{key}"
        if self.kind == "scaled":
            return f"budget.{key} (scaled with {self.where})"
        suffix = " (left out, so the default)" if self.kind == "default" else ""
        return f"{self.where}: budget.{key}{suffix}"

    def got(self, value: int) -> str:
        return "" if self.kind == "flag" else f", got {shown(value)}"

    def name(self, key: str, subject: Origin) -> str:
        """How another value's message refers to this one."""
        if self.kind == "flag":
            return self.where
        if self.kind == "preset":
            return f"the {key} of {self.where}"
        if self.kind == "saved":
            return f"the {key} of experiment {self.where}"
        if self.kind == "default":
            return f"the default {key}"
        if self.kind == "scaled":
            return f"the {key} scaled with {self.where}"
        return (
            key if subject.kind == "file" and subject.where == self.where else f"budget.{key} of {self.where}"
        )


def build_budget(values: Mapping[str, int], origins: Mapping[str, Origin]) -> Budget:
    """A Budget of `values` whose errors name where each value came from:
    `--eval-interval 5000: expected at most --epochs (3000)`, or, from a file,
    `x.yaml: budget.grace_epochs: expected at most epochs (1000), got 2000`."""

    def refuse(key: str, what: str) -> UsageError:
        origin = origins[key]
        return UsageError(f"{origin.subject(key, values[key])}: {what}{origin.got(values[key])}")

    for key in BUDGET_KEYS:
        value = values[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise refuse(key, "expected an integer >= 1")
        if value > MAX_INT:
            raise refuse(key, f"expected at most {MAX_INT}")
    epochs = values["epochs"]
    for key in ("eval_interval", "grace_epochs"):
        if values[key] > epochs:
            raise refuse(key, f"expected at most {origins['epochs'].name('epochs', origins[key])} ({epochs})")
    if values["reduction_factor"] < 2:
        raise refuse("reduction_factor", "expected an integer >= 2")
    return Budget(**{key: values[key] for key in BUDGET_KEYS})


def scaled_budget(budget: Budget, *, epochs: int, keep: typing.Container[str] = ()) -> dict[str, int]:
    """eval_interval and grace_epochs for a run of `epochs` instead of budget.epochs,
    each unless named in `keep`: as many evaluations, and the grace period at the same
    fraction of the run (on the same evaluation, when both are scaled and it was on one).
    Returns the budget's values with these replaced."""
    factor = epochs / budget.epochs
    values = dataclasses.asdict(budget) | {"epochs": epochs}
    interval = budget.eval_interval
    if "eval_interval" not in keep:
        values["eval_interval"] = min(epochs, max(1, round(interval * factor)))
    if "grace_epochs" not in keep:
        on_evaluation = "eval_interval" not in keep and budget.grace_epochs % interval == 0
        grace = (
            budget.grace_epochs // interval * values["eval_interval"]
            if on_evaluation
            else max(1, round(budget.grace_epochs * factor))
        )
        values["grace_epochs"] = min(epochs, grace)
    return values


def asha_rungs(*, epochs: int | None, grace_epochs: int | None, reduction_factor: int | None) -> list[int]:
    """ASHA's milestones, grace * factor^k below the full budget: the epochs at which a
    trial can be stopped."""
    if not (epochs and grace_epochs and reduction_factor and reduction_factor > 1):
        return []
    out, rung = [], grace_epochs
    while rung < epochs:
        out.append(rung)
        rung *= reduction_factor
    return out


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
        if _base_type(self.name) is int:
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
                raise _fail(
                    self.path, f"budget.{key}", f"unknown budget key{_did_you_mean(key, BUDGET_KEYS)}"
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
        """The same question at toy scale, to check a whole search end to end on a CPU.

        A few trials of a few evaluations each; a tiny model (each distinct layer stack
        becomes a distinct tiny one); schedules (anchor decay, curriculum ramp, mining
        start and interval) scaled by the same factor as the epochs, so that mining
        still happens; batch and mining sizes capped. Settings the space leaves at
        their defaults get the same treatment, so the run stays tiny. Lookahead is
        kept: it is cheap at this size.
        """
        caps = SMOKE_BUDGET_MAX
        budget = Budget(
            epochs=min(self.budget.epochs, caps["epochs"]),
            eval_interval=min(self.budget.eval_interval, caps["eval_interval"]),
            grace_epochs=min(self.budget.grace_epochs, caps["grace_epochs"]),
            reduction_factor=2,
            num_samples=min(self.budget.num_samples, caps["num_samples"]),
        )
        factor = budget.epochs / self.budget.epochs
        rules = _rules(factor, SCHEDULE_FIELDS, SMOKE_CAPS, _smoke_stacks(self._stacks()))
        return self._shrunk("smoke", budget, rules)

    def laptop(self) -> SearchSpace:
        """The same question at a size two CPUs finish in about half an hour to an hour
        (docs/search.md has the measurements behind the sizes), and still answer.

        At most LAPTOP_BUDGET_MAX epochs and trials; eval_interval and grace_epochs scaled
        with the epochs, so a trial is evaluated as often and ASHA's rungs sit at the same
        fractions of the run; reduction_factor kept. Every searched range and choice is
        kept, lookahead included, so the question is still asked; what changes is the
        scale: hidden widths divided by LAPTOP_WIDTH_DIVISOR (distinct stacks stay
        distinct and in the same order of size), the batch capped, and schedules (anchor
        decay, curriculum ramp, mining start and interval, learning-rate patience)
        scaled by the epochs' factor. A space already that small keeps its budget.
        """
        epochs = min(self.budget.epochs, LAPTOP_BUDGET_MAX["epochs"])
        values = scaled_budget(self.budget, epochs=epochs)
        values["num_samples"] = min(self.budget.num_samples, LAPTOP_BUDGET_MAX["num_samples"])
        factor = epochs / self.budget.epochs
        rules = _rules(factor, LAPTOP_SCHEDULE_FIELDS, LAPTOP_CAPS, _laptop_stacks(self._stacks()))
        return self._shrunk("laptop", Budget(**values), rules)

    def scaled(self, preset: str | None) -> SearchSpace:
        """This space at a preset's scale (PRESETS: "smoke", "laptop"), or as it is."""
        if preset is None:
            return self
        if preset not in PRESETS:
            raise UsageError(f"unknown scale {preset!r}; expected one of: {', '.join(PRESETS)}")
        return getattr(self, preset)()

    def _stacks(self) -> tuple[tuple[int, ...], ...]:
        """Every layer stack a trial of this space can get."""
        searched = {p.name: p for p in self.parameters}
        if "layers" in searched:
            return searched["layers"].choices
        return (self.fixed.get("layers", _DEFAULTS.layers),)

    def _shrunk(self, preset: str, budget: Budget, rules: Mapping[str, Callable[[Any], Any]]) -> SearchSpace:
        """This space under a preset's budget and `rules`: each rule maps the values of
        one setting, fixed, searched or left at its default."""
        searched = {p.name: p for p in self.parameters}
        fixed = dict(self.fixed)
        for name, rule in rules.items():
            current = fixed.get(name, getattr(_DEFAULTS, name))
            if name not in searched and rule(current) != current:
                fixed[name] = rule(current)
        parameters = tuple(_shrink(p, rules) for p in self.parameters)
        return SearchSpace(
            name=f"{self.name}-{preset}",
            path=self.path,
            description=f"[{preset}] {self.description}",
            budget=budget,
            fixed=fixed,
            parameters=parameters,
            budget_defaults=self.budget_defaults,
            objective=self.objective,
        )

    # -- checks ---------------------------------------------------------------------
    def _check_conditions(self) -> None:
        searched = {p.name: p for p in self.parameters}
        for p in self.parameters:
            where = f"parameters.{p.name}"
            if p.name in self.fixed:
                raise _fail(self.path, where, "also set under fixed; a setting is either fixed or searched")
            for key, accepted in p.when:
                clause = f"{where}.when.{key}"
                if key == p.name:
                    raise _fail(self.path, clause, "a parameter cannot be conditional on itself")
                if key in self.fixed:
                    if self.fixed[key] not in accepted:
                        raise _fail(
                            self.path,
                            clause,
                            f"can never hold: fixed.{key} is "
                            f"{shown(plain_value(self.fixed[key]))}, "
                            f"not one of {shown([plain_value(a) for a in accepted])}",
                        )
                elif key in searched:
                    if not any(searched[key].can_take(a) for a in accepted):
                        raise _fail(
                            self.path,
                            clause,
                            f"can never hold: parameters.{key} never takes "
                            f"{shown([plain_value(a) for a in accepted])}",
                        )
                else:
                    close = difflib.get_close_matches(key, [*self.fixed, *searched], n=1)
                    hint = f"did you mean {close[0]!r}?" if close else "add it under fixed or parameters"
                    raise _fail(
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
                raise _fail(
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


def _rules(
    factor: float,
    scaled: typing.Iterable[str],
    caps: Mapping[str, int],
    stacks: Mapping[tuple[int, ...], tuple[int, ...]],
) -> dict[str, Callable[[Any], Any]]:
    """How a preset maps each setting it changes: epoch counts in `scaled` by `factor`,
    sizes in `caps` capped, layer stacks through `stacks` (others kept)."""

    def scale(v: int | None) -> int | None:
        return v if not v else max(1, round(v * factor))

    def cap(limit: int) -> Callable[[int], int]:
        return lambda v: min(v, limit)

    rules: dict[str, Callable[[Any], Any]] = {name: scale for name in scaled}
    rules.update({name: cap(limit) for name, limit in caps.items()})
    rules["layers"] = lambda stack: stacks.get(stack, stack)
    return rules


def _smoke_stacks(stacks: typing.Iterable[tuple[int, ...]]) -> dict[tuple[int, ...], tuple[int, ...]]:
    """Each stack to a distinct tiny one, by position; () (with linear) stays ()."""
    return {stack: _tiny_stack(i) for i, stack in enumerate(s for s in stacks if s)}


def _laptop_stacks(stacks: typing.Iterable[tuple[int, ...]]) -> dict[tuple[int, ...], tuple[int, ...]]:
    """Each stack with its widths above LAPTOP_MIN_WIDTH divided by LAPTOP_WIDTH_DIVISOR
    (not below LAPTOP_MIN_WIDTH): depth and order of size kept. Should that merge two
    distinct stacks, by the largest smaller power of two that keeps them apart."""
    stacks = list(dict.fromkeys(stacks))
    divisor = LAPTOP_WIDTH_DIVISOR
    while True:
        mapped = {
            s: tuple(w if w <= LAPTOP_MIN_WIDTH else max(LAPTOP_MIN_WIDTH, w // divisor) for w in s)
            for s in stacks
        }
        if divisor == 1 or len(set(mapped.values())) == len(mapped):
            return mapped
        divisor //= 2


#: Scales `SearchSpace.scaled` knows: the suffix each adds to the space's name.
PRESETS = ("smoke", "laptop")


def _tiny_stack(index: int) -> tuple[int, ...]:
    """The index-th of an endless list of distinct stacks no wider than 32:
    16x2, 8x2, 32x2, 16x3, 8x3, ..."""
    return ((16, 8, 32)[index % 3],) * (2 + index // 3)


def _shrink(p: Parameter, rules: Mapping[str, Callable[[Any], Any]]) -> Parameter:
    """`p` with smoke() rules applied to its values and to the values its `when`
    accepts (so conditions on shrunk settings still hold)."""
    when = tuple(
        (key, tuple(rules[key](a) for a in accepted) if key in rules else accepted)
        for key, accepted in p.when
    )
    rule = rules.get(p.name)
    if rule is None:
        return dataclasses.replace(p, when=when)
    if not p.is_range:
        # Sizes capped to the same value collapse into one choice.
        return dataclasses.replace(p, when=when, choices=tuple(dict.fromkeys(map(rule, p.choices))))
    low, high = rule(p.low), rule(p.high)
    step = max(1, rule(p.step)) if p.step else None
    if step:
        high = low + (high - low) // step * step  # back onto the grid after rounding
    return dataclasses.replace(p, when=when, low=low, high=high, step=step)


# -- loading -------------------------------------------------------------------------


def available_spaces(*, spaces_dir: str | Path | None = None) -> list[str]:
    """Names `load_space` accepts: the NAME.yaml files in the spaces directory."""
    directory = Path(spaces_dir) if spaces_dir is not None else SPACES_DIR
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_space(name_or_path: str | Path, *, spaces_dir: str | Path | None = None) -> SearchSpace:
    """Load and check a space: a name (search_spaces/NAME.yaml, or NAME.yaml in
    `spaces_dir`) or a path ending in .yaml/.yml. Any problem raises UsageError with one
    line naming the file, the key path and what was expected."""
    path = _locate(name_or_path, spaces_dir)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise UsageError(
            f"{path}: expected a mapping with keys {', '.join(TOP_LEVEL_KEYS)}, got {type(data).__name__}"
        )
    return _parse(data, path)


def _locate(name_or_path: str | Path, spaces_dir: str | Path | None) -> Path:
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")):
        path = Path(text)
        if not path.is_file():
            raise UsageError(f"{path}: search space file not found")
        return path
    directory = Path(spaces_dir) if spaces_dir is not None else SPACES_DIR
    path = directory / f"{text}.yaml"
    if not path.is_file():
        names = available_spaces(spaces_dir=directory)
        raise UsageError(
            f"{path}: unknown search space {shown(text)}; available: {', '.join(names) or 'none'}"
        )
    return path


def _parse(data: Mapping[Any, Any], path: Path) -> SearchSpace:
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise _fail(path, str(key), f"unknown top-level key{_did_you_mean(key, TOP_LEVEL_KEYS)}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _fail(path, "description", f"expected a string, got {shown(description)}")
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise _fail(path, "fixed", f"expected a mapping of trainer settings to values, got {shown(fixed)}")
    parameters = data.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise _fail(
            path,
            "parameters",
            f"expected a non-empty mapping of trainer settings to distributions, got {shown(parameters)}",
        )
    budget, left_out = _parse_budget(data.get("budget"), path)
    objective = data.get("objective", DEFAULT_OBJECTIVE)
    if not isinstance(objective, str) or objective not in OBJECTIVES:
        raise _fail(
            path, "objective", f"unknown objective {shown(objective)}{_did_you_mean(objective, OBJECTIVES)}"
        )
    return SearchSpace(
        name=path.stem,
        path=path,
        description=description.strip(),
        budget=budget,
        objective=objective,
        fixed={key: _parse_fixed(key, value, path) for key, value in fixed.items()},
        parameters=tuple(_parse_parameter(name, spec, path) for name, spec in parameters.items()),
        budget_defaults=left_out,
    )


def _parse_fixed(key: Any, value: Any, path: Path) -> Any:
    _check_setting(key, f"fixed.{key}", path)
    return _setting(key, value, f"fixed.{key}", path)


def _setting(name: str, raw: Any, where: str, path: Path, *, check: bool = True) -> Any:
    """A setting's value as TrainConfig takes it. A counterexample bank (hard_seed_bank)
    is made an absolute path, since trials run in directories of their own, and, when
    `check`, read: a missing or damaged bank is refused here, before any trial starts."""
    value = coerce(where, raw, _HINTS[name], source=str(path))
    if name != BANK_SETTING or value is None:
        return value
    value = str(Path(value).expanduser().absolute())
    if check:
        try:
            read_bank(value, strict=True)
        except UsageError as err:
            raise _fail(path, where, str(err)) from None
    return value


def _parse_budget(data: Any, path: Path) -> tuple[Budget, tuple[str, ...]]:
    """The file's budget, DEFAULT_BUDGET filling what it leaves out (an absent or empty
    `budget` included), and the keys so filled."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _fail(
            path, "budget", f"expected a mapping with some of {', '.join(BUDGET_KEYS)}, got {shown(data)}"
        )
    for key in data:
        if key not in BUDGET_KEYS:
            raise _fail(path, f"budget.{key}", f"unknown budget key{_did_you_mean(key, BUDGET_KEYS)}")
    given = {
        key: coerce(f"budget.{key}", data[key], int, source=str(path)) for key in BUDGET_KEYS if key in data
    }
    defaults = dict(DEFAULT_BUDGET)
    if "epochs" in given and given["epochs"] >= 1:
        # Left-out eval_interval and grace_epochs follow the file's epochs, as --epochs
        # scales them.
        scaled = scaled_budget(Budget(**DEFAULT_BUDGET), epochs=given["epochs"])
        defaults.update(eval_interval=scaled["eval_interval"], grace_epochs=scaled["grace_epochs"])
    left_out = tuple(key for key in BUDGET_KEYS if key not in given)
    origins = {key: Origin("default" if key in left_out else "file", str(path)) for key in BUDGET_KEYS}
    return build_budget(defaults | given, origins), left_out


def _check_setting(name: Any, where: str, path: Path) -> None:
    """Refuse, in one line, a name that is not a TrainConfig field a space may set."""
    if name in BUDGET_OWNED:
        raise _fail(path, where, f"set by budget.{name}, not here")
    if name not in _HINTS:
        raise _fail(path, where, f"unknown trainer setting {shown(str(name))}{_did_you_mean(name, _HINTS)}")


def _parse_parameter(name: Any, spec: Any, path: Path) -> Parameter:
    where = f"parameters.{name}"
    _check_setting(name, where, path)
    if not isinstance(spec, dict):
        raise _fail(
            path,
            where,
            "expected a mapping: {values: [...]}, {value: ...} or "
            f"{{distribution: ..., min: ..., max: ...}}, got {shown(spec)}",
        )
    for key in spec:
        if key not in PARAMETER_KEYS:
            raise _fail(path, f"{where}.{key}", f"unknown key{_did_you_mean(key, PARAMETER_KEYS)}")
    when = _parse_when(spec.get("when"), f"{where}.when", path)
    forms = [
        form
        for form, keys in (
            ("values", ("values",)),
            ("value", ("value",)),
            ("range", ("min", "max", "distribution", "step")),
        )
        if any(k in spec for k in keys)
    ]
    if len(forms) != 1:
        raise _fail(
            path,
            where,
            "expected exactly one of values (categorical), value (constant) "
            f"or min/max (a range), got keys {shown(', '.join(map(str, spec)))}",
        )

    def value_of(key: str, raw: Any) -> Any:
        return _setting(name, raw, f"{where}.{key}", path)

    if forms == ["value"]:
        return Parameter(name, "constant", choices=(value_of("value", spec["value"]),), when=when)
    if forms == ["values"]:
        raw = spec["values"]
        if not isinstance(raw, list) or not raw:
            raise _fail(path, f"{where}.values", f"expected a non-empty list of choices, got {shown(raw)}")
        choices = [value_of(f"values[{i}]", v) for i, v in enumerate(raw)]
        for i, choice in enumerate(choices):
            if choice in choices[:i]:
                raise _fail(
                    path,
                    f"{where}.values[{i}]",
                    f"duplicate of values[{choices.index(choice)}] ({shown(plain_value(choice))})",
                )
        return Parameter(name, "categorical", choices=tuple(choices), when=when)
    return _parse_range(name, spec, where, when, path)


def _parse_range(
    name: str, spec: Mapping[str, Any], where: str, when: tuple[tuple[str, tuple], ...], path: Path
) -> Parameter:
    kind = _base_type(name)
    if kind not in (int, float):
        raise _fail(
            path,
            where,
            f"a range needs a numeric setting, and {name} takes "
            f"{'a list' if kind is tuple else kind.__name__}: use values",
        )
    default = "int_uniform" if kind is int else "uniform"
    distribution = spec.get("distribution", default)
    if distribution not in DISTRIBUTIONS:
        raise _fail(
            path,
            f"{where}.distribution",
            f"unknown distribution {shown(distribution)}{_did_you_mean(distribution, DISTRIBUTIONS)}",
        )
    if distribution == "uniform" and kind is int:
        raise _fail(path, f"{where}.distribution", f"{name} takes integers: use int_uniform or log_uniform")
    if distribution == "int_uniform" and kind is float:
        raise _fail(path, f"{where}.distribution", f"{name} takes numbers: use uniform or log_uniform")
    for key in ("min", "max"):
        if key not in spec:
            raise _fail(path, f"{where}.{key}", "missing; a range needs min and max")
    low = coerce(f"{where}.min", spec["min"], kind, source=str(path))
    high = coerce(f"{where}.max", spec["max"], kind, source=str(path))
    if low > high:
        raise _fail(path, f"{where}.min", f"expected min <= max ({shown(high)}), got {shown(low)}")
    if distribution == "log_uniform" and low <= 0:
        raise _fail(path, f"{where}.min", f"log_uniform needs min > 0, got {shown(low)}")
    step = None
    if "step" in spec:
        if distribution != "int_uniform":
            raise _fail(path, f"{where}.step", f"step goes with int_uniform only, not {distribution}")
        step = coerce(f"{where}.step", spec["step"], int, source=str(path))
        if step < 1 or (high - low) % step:
            raise _fail(
                path,
                f"{where}.step",
                f"expected an integer >= 1 that divides max - min ({shown(high - low)}), got {shown(step)}",
            )
    return Parameter(name, distribution, low=low, high=high, step=step, when=when)


def _parse_when(spec: Any, where: str, path: Path) -> tuple[tuple[str, tuple], ...]:
    if spec is None:
        return ()
    if not isinstance(spec, dict) or not spec:
        raise _fail(
            path,
            where,
            f"expected a mapping of settings to values, e.g. {{mine_negatives: true}}, got {shown(spec)}",
        )
    clauses = []
    for key, accepted in spec.items():
        clause = f"{where}.{key}"
        _check_setting(key, clause, path)
        # A list means any of its items, except for a list-valued setting (layers),
        # where only a list of lists does.
        listed = isinstance(accepted, list) and (
            _base_type(key) is not tuple or (accepted and all(isinstance(a, list) for a in accepted))
        )
        options = accepted if listed else [accepted]
        if not options:
            raise _fail(path, clause, "expected a value or a non-empty list of values")
        clauses.append((key, tuple(_setting(key, o, clause, path, check=False) for o in options)))
    return tuple(clauses)
