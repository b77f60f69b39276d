"""Search spaces: which trainer settings a hyperparameter search varies, and over what.

A search space is a YAML file in search_spaces/ (the format is documented in
search_spaces/README.md). It holds one search's question: the budget ASHA may spend,
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

import collections.abc
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from collatz_ray.trainer.config import TrainConfig, coerce
from collatz_ray.errors import UsageError
from collatz_ray.search.objective import DEFAULT_OBJECTIVE, OBJECTIVES



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

_HINTS = typing.get_type_hints(TrainConfig)
_DEFAULTS = TrainConfig()


def _base_type(name: str) -> type:
    """int, float, bool, str or tuple: a field's type without Optional."""
    annotation = _HINTS[name]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    return typing.get_origin(annotation) or annotation


def _fail(path: Path, where: str, what: str) -> UsageError:
    return UsageError(f"{path}: {where}: {what}")


def _did_you_mean(word: object, options: typing.Iterable[str]) -> str:
    options = list(options)
    close = difflib.get_close_matches(str(word), options, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; expected one of: {', '.join(options)}"


def _encode(value: Any) -> Any:
    """An Optuna categorical choice: Optuna stores only None/bool/int/float/str, so a
    list-valued choice (layers) travels as "128,128,128"."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def _plain(value: Any) -> Any:
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
                raise UsageError(f"budget.{key}: expected an integer >= 1, got {value!r}")
        if self.eval_interval > self.epochs:
            raise UsageError(f"budget.eval_interval: expected at most epochs ({self.epochs}), "
                             f"got {self.eval_interval}")
        if self.grace_epochs > self.epochs:
            raise UsageError(f"budget.grace_epochs: expected at most epochs ({self.epochs}), "
                             f"got {self.grace_epochs}")
        if self.reduction_factor < 2:
            raise UsageError(f"budget.reduction_factor: expected an integer >= 2, "
                             f"got {self.reduction_factor}")


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
            encoded = [_encode(c) for c in self.choices]
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
    #: Which violation count ASHA and TPE minimise (search/objective.py OBJECTIVES).
    objective: str = DEFAULT_OBJECTIVE

    def __post_init__(self) -> None:
        self._check_conditions()
        # Frozen, but the order is part of the value: set it once, here.
        object.__setattr__(self, "parameters", self._dependency_order())
        base = self._fixed_config()
        for p in self.parameters:
            for key, value in p.bounds():
                TrainConfig.from_dict({p.name: value}, source=f"{self.path}: parameters.{p.name}.{key}",
                                      base=base)

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
                sampled[p.name] = _plain(context[p.name])
        return sampled

    def trial_config(self, params: Mapping[str, Any]) -> TrainConfig:
        """The TrainConfig of one trial: fixed settings, the budget's epochs and
        eval_interval, then the sampled `params`."""
        values = {**self.fixed, "epochs": self.budget.epochs,
                  "eval_interval": self.budget.eval_interval, **params}
        return TrainConfig.from_dict(values, source=f"{self.path}: trial")

    # -- variants -------------------------------------------------------------------
    def with_budget(self, **overrides: int | None) -> SearchSpace:
        """The same space with some budget fields replaced (None keeps the field), for
        command-line flags such as --epochs, --num-samples, --grace-epochs."""
        for key in overrides:
            if key not in BUDGET_KEYS:
                raise _fail(self.path, f"budget.{key}", f"unknown budget key{_did_you_mean(key, BUDGET_KEYS)}")
        changes = {k: v for k, v in overrides.items() if v is not None}
        try:
            budget = dataclasses.replace(self.budget, **changes)
        except UsageError as err:
            raise UsageError(f"{self.path}: {err}") from None
        return dataclasses.replace(self, budget=budget)

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
        budget = Budget(epochs=min(self.budget.epochs, caps["epochs"]),
                        eval_interval=min(self.budget.eval_interval, caps["eval_interval"]),
                        grace_epochs=min(self.budget.grace_epochs, caps["grace_epochs"]),
                        reduction_factor=2,
                        num_samples=min(self.budget.num_samples, caps["num_samples"]))
        rules = self._smoke_rules(budget.epochs / self.budget.epochs)
        searched = {p.name: p for p in self.parameters}
        fixed = dict(self.fixed)
        for name, rule in rules.items():
            current = fixed.get(name, getattr(_DEFAULTS, name))
            if name not in searched and rule(current) != current:
                fixed[name] = rule(current)
        parameters = tuple(_shrink(p, rules) for p in self.parameters)
        return SearchSpace(name=f"{self.name}-smoke", path=self.path,
                           description=f"[smoke] {self.description}", budget=budget,
                           fixed=fixed, parameters=parameters, objective=self.objective)

    def _smoke_rules(self, factor: float) -> dict[str, Callable[[Any], Any]]:
        """For each setting smoke() changes, how it maps one value."""

        def scale(v: int | None) -> int | None:
            return v if not v else max(1, round(v * factor))

        def cap(limit: int) -> Callable[[int], int]:
            return lambda v: min(v, limit)

        searched = {p.name: p for p in self.parameters}
        stacks = searched["layers"].choices if "layers" in searched else (
            self.fixed.get("layers", _DEFAULTS.layers),)
        # Map by position so distinct stacks stay distinct; () (with linear) stays ().
        tiny = {stack: _tiny_stack(i) for i, stack in enumerate(s for s in stacks if s)}
        rules: dict[str, Callable[[Any], Any]] = {name: scale for name in SCHEDULE_FIELDS}
        rules.update({name: cap(limit) for name, limit in SMOKE_CAPS.items()})
        rules["layers"] = lambda stack: tiny.get(stack, stack)
        return rules

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
                        raise _fail(self.path, clause, f"can never hold: fixed.{key} is "
                                    f"{_plain(self.fixed[key])!r}, not one of {[_plain(a) for a in accepted]}")
                elif key in searched:
                    if not any(searched[key].can_take(a) for a in accepted):
                        raise _fail(self.path, clause, f"can never hold: parameters.{key} never takes "
                                    f"{[_plain(a) for a in accepted]}")
                else:
                    close = difflib.get_close_matches(key, [*self.fixed, *searched], n=1)
                    hint = f"did you mean {close[0]!r}?" if close else "add it under fixed or parameters"
                    raise _fail(self.path, clause, f"{key!r} is neither a parameter nor a fixed key "
                                f"of this space; {hint}")

    def _dependency_order(self) -> tuple[Parameter, ...]:
        searched = {p.name for p in self.parameters}
        placed: list[Parameter] = []
        pending = list(self.parameters)
        while pending:
            done = {p.name for p in placed}
            ready = next((p for p in pending
                          if all(k in done or k not in searched for k, _ in p.when)), None)
            if ready is None:
                names = ", ".join(p.name for p in pending)
                raise _fail(self.path, f"parameters.{pending[0].name}.when",
                            f"circular conditions among {names}")
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
            where = next((f"fixed.{key}" for key in self.fixed
                          if _is_valid({k: v for k, v in values.items() if k != key})), "fixed")
        return TrainConfig.from_dict(values, source=f"{self.path}: {where}")


def _is_valid(values: Mapping[str, Any]) -> bool:
    try:
        TrainConfig.from_dict(values)
    except UsageError:
        return False
    return True


def _tiny_stack(index: int) -> tuple[int, ...]:
    """The index-th of an endless list of distinct stacks no wider than 32:
    16x2, 8x2, 32x2, 16x3, 8x3, ..."""
    return ((16, 8, 32)[index % 3],) * (2 + index // 3)


def _shrink(p: Parameter, rules: Mapping[str, Callable[[Any], Any]]) -> Parameter:
    """`p` with smoke() rules applied to its values and to the values its `when`
    accepts (so conditions on shrunk settings still hold)."""
    when = tuple((key, tuple(rules[key](a) for a in accepted) if key in rules else accepted)
                 for key, accepted in p.when)
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
    try:
        data = yaml.load(path.read_text(), Loader=_StrictLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        raise _fail(path, where, f"not valid YAML: {err.problem}") from None
    except yaml.YAMLError as err:
        raise _fail(path, "YAML", f"not valid YAML: {' '.join(str(err).split())}") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read ({err.strerror})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping with keys {', '.join(TOP_LEVEL_KEYS)}, "
                         f"got {type(data).__name__}")
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
        raise UsageError(f"{path}: unknown search space {text!r}; available: {', '.join(names) or 'none'}")
    return path


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping, where PyYAML would keep
    the last silently: a second `lr:` in a sweep file must not quietly replace the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, collections.abc.Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse(data: Mapping[Any, Any], path: Path) -> SearchSpace:
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise _fail(path, str(key), f"unknown top-level key{_did_you_mean(key, TOP_LEVEL_KEYS)}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _fail(path, "description", f"expected a string, got {description!r}")
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise _fail(path, "fixed", f"expected a mapping of trainer settings to values, got {fixed!r}")
    parameters = data.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise _fail(path, "parameters", "expected a non-empty mapping of trainer settings to "
                    f"distributions, got {parameters!r}")
    objective = data.get("objective", DEFAULT_OBJECTIVE)
    if not isinstance(objective, str) or objective not in OBJECTIVES:
        raise _fail(path, "objective", f"unknown objective {objective!r}{_did_you_mean(objective, OBJECTIVES)}")
    return SearchSpace(name=path.stem, path=path, description=description.strip(),
                       objective=objective,
                       budget=_parse_budget(data.get("budget"), path),
                       fixed={key: _parse_fixed(key, value, path) for key, value in fixed.items()},
                       parameters=tuple(_parse_parameter(name, spec, path)
                                        for name, spec in parameters.items()))


def _parse_fixed(key: Any, value: Any, path: Path) -> Any:
    _check_setting(key, f"fixed.{key}", path)
    return coerce(f"fixed.{key}", value, _HINTS[key], source=str(path))


def _parse_budget(data: Any, path: Path) -> Budget:
    if not isinstance(data, dict):
        raise _fail(path, "budget", f"expected a mapping with {', '.join(BUDGET_KEYS)}, got {data!r}")
    for key in data:
        if key not in BUDGET_KEYS:
            raise _fail(path, f"budget.{key}", f"unknown budget key{_did_you_mean(key, BUDGET_KEYS)}")
    for key in BUDGET_KEYS:
        if key not in data:
            raise _fail(path, f"budget.{key}", "missing; expected an integer")
    values = {key: coerce(f"budget.{key}", data[key], int, source=str(path)) for key in BUDGET_KEYS}
    try:
        return Budget(**values)
    except UsageError as err:
        raise UsageError(f"{path}: {err}") from None


def _check_setting(name: Any, where: str, path: Path) -> None:
    """Refuse, in one line, a name that is not a TrainConfig field a space may set."""
    if name in BUDGET_OWNED:
        raise _fail(path, where, f"set by budget.{name}, not here")
    if name not in _HINTS:
        raise _fail(path, where, f"unknown trainer setting {str(name)!r}{_did_you_mean(name, _HINTS)}")


def _parse_parameter(name: Any, spec: Any, path: Path) -> Parameter:
    where = f"parameters.{name}"
    _check_setting(name, where, path)
    if not isinstance(spec, dict):
        raise _fail(path, where, "expected a mapping: {values: [...]}, {value: ...} or "
                    f"{{distribution: ..., min: ..., max: ...}}, got {spec!r}")
    for key in spec:
        if key not in PARAMETER_KEYS:
            raise _fail(path, f"{where}.{key}", f"unknown key{_did_you_mean(key, PARAMETER_KEYS)}")
    when = _parse_when(spec.get("when"), f"{where}.when", path)
    forms = [form for form, keys in (("values", ("values",)), ("value", ("value",)),
                                     ("range", ("min", "max", "distribution", "step")))
             if any(k in spec for k in keys)]
    if len(forms) != 1:
        raise _fail(path, where, "expected exactly one of values (categorical), value (constant) "
                    f"or min/max (a range), got keys {', '.join(map(str, spec))}")

    def value_of(key: str, raw: Any) -> Any:
        return coerce(f"{where}.{key}", raw, _HINTS[name], source=str(path))

    if forms == ["value"]:
        return Parameter(name, "constant", choices=(value_of("value", spec["value"]),), when=when)
    if forms == ["values"]:
        raw = spec["values"]
        if not isinstance(raw, list) or not raw:
            raise _fail(path, f"{where}.values", f"expected a non-empty list of choices, got {raw!r}")
        choices = [value_of(f"values[{i}]", v) for i, v in enumerate(raw)]
        for i, choice in enumerate(choices):
            if choice in choices[:i]:
                raise _fail(path, f"{where}.values[{i}]",
                            f"duplicate of values[{choices.index(choice)}] ({_plain(choice)!r})")
        return Parameter(name, "categorical", choices=tuple(choices), when=when)
    return _parse_range(name, spec, where, when, path)


def _parse_range(name: str, spec: Mapping[str, Any], where: str,
                 when: tuple[tuple[str, tuple], ...], path: Path) -> Parameter:
    kind = _base_type(name)
    if kind not in (int, float):
        raise _fail(path, where, f"a range needs a numeric setting, and {name} takes "
                    f"{'a list' if kind is tuple else kind.__name__}: use values")
    default = "int_uniform" if kind is int else "uniform"
    distribution = spec.get("distribution", default)
    if distribution not in DISTRIBUTIONS:
        raise _fail(path, f"{where}.distribution", f"unknown distribution {distribution!r}"
                    f"{_did_you_mean(distribution, DISTRIBUTIONS)}")
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
        raise _fail(path, f"{where}.min", f"expected min <= max ({high}), got {low}")
    if distribution == "log_uniform" and low <= 0:
        raise _fail(path, f"{where}.min", f"log_uniform needs min > 0, got {low}")
    step = None
    if "step" in spec:
        if distribution != "int_uniform":
            raise _fail(path, f"{where}.step", f"step goes with int_uniform only, not {distribution}")
        step = coerce(f"{where}.step", spec["step"], int, source=str(path))
        if step < 1 or (high - low) % step:
            raise _fail(path, f"{where}.step", f"expected an integer >= 1 that divides max - min "
                        f"({high - low}), got {step}")
    return Parameter(name, distribution, low=low, high=high, step=step, when=when)


def _parse_when(spec: Any, where: str, path: Path) -> tuple[tuple[str, tuple], ...]:
    if spec is None:
        return ()
    if not isinstance(spec, dict) or not spec:
        raise _fail(path, where, f"expected a mapping of settings to values, e.g. "
                    f"{{mine_negatives: true}}, got {spec!r}")
    clauses = []
    for key, accepted in spec.items():
        clause = f"{where}.{key}"
        _check_setting(key, clause, path)
        # A list means any of its items, except for a list-valued setting (layers),
        # where only a list of lists does.
        listed = isinstance(accepted, list) and (
            _base_type(key) is not tuple or (accepted and all(isinstance(a, list) for a in accepted)))
        options = accepted if listed else [accepted]
        if not options:
            raise _fail(path, clause, "expected a value or a non-empty list of values")
        clauses.append((key, tuple(coerce(clause, o, _HINTS[key], source=str(path)) for o in options)))
    return tuple(clauses)
