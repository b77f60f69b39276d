"""Search space files: finding one by name or path, and reading its YAML into a checked
SearchSpace. The format is documented in docs/spaces.md. Every problem is refused in one
line naming the file, the key path and what was expected."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from collatz_ray._yaml import load_yaml
from collatz_ray.errors import UsageError, shown
from collatz_ray.search.objective import DEFAULT_OBJECTIVE, OBJECTIVES
from collatz_ray.search.spaces._refusal import did_you_mean, refusal
from collatz_ray.search.spaces.budget import (
    BUDGET_KEYS,
    DEFAULT_BUDGET,
    Budget,
    Origin,
    build_budget,
    scaled_budget,
)
from collatz_ray.search.spaces.model import (
    DISTRIBUTIONS,
    SETTING_TYPES,
    Parameter,
    SearchSpace,
    base_type,
    plain_value,
)
from collatz_ray.trainer.bank import read_bank
from collatz_ray.trainer.config import coerce


def _shipped_spaces_dir() -> Path:
    """search_spaces/ of an installed wheel (packaged inside collatz_ray), else the one at
    the top of the repository (a checkout or an editable install)."""
    package = Path(__file__).resolve().parents[2]  # collatz_ray/search/spaces/parsing.py
    installed = package / "search_spaces"
    return installed if installed.is_dir() else package.parent / "search_spaces"


#: Where named spaces live.
SPACES_DIR = _shipped_spaces_dir()

TOP_LEVEL_KEYS = ("description", "objective", "budget", "fixed", "parameters")
#: TrainConfig fields the budget owns: the search scheduler must know them, so a space
#: sets them under `budget` and nowhere else.
BUDGET_OWNED = ("epochs", "eval_interval")
#: The setting that names a file (a counterexample bank), checked when a space loads.
BANK_SETTING = "hard_seed_bank"
PARAMETER_KEYS = ("values", "value", "distribution", "min", "max", "step", "when")


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
            raise refusal(path, str(key), f"unknown top-level key{did_you_mean(key, TOP_LEVEL_KEYS)}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise refusal(path, "description", f"expected a string, got {shown(description)}")
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise refusal(path, "fixed", f"expected a mapping of trainer settings to values, got {shown(fixed)}")
    parameters = data.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise refusal(
            path,
            "parameters",
            f"expected a non-empty mapping of trainer settings to distributions, got {shown(parameters)}",
        )
    budget, left_out = _parse_budget(data.get("budget"), path)
    objective = data.get("objective", DEFAULT_OBJECTIVE)
    if not isinstance(objective, str) or objective not in OBJECTIVES:
        raise refusal(
            path, "objective", f"unknown objective {shown(objective)}{did_you_mean(objective, OBJECTIVES)}"
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
    value = coerce(where, raw, SETTING_TYPES[name], source=str(path))
    if name != BANK_SETTING or value is None:
        return value
    value = str(Path(value).expanduser().absolute())
    if check:
        try:
            read_bank(value, strict=True)
        except UsageError as err:
            raise refusal(path, where, str(err)) from None
    return value


def _parse_budget(data: Any, path: Path) -> tuple[Budget, tuple[str, ...]]:
    """The file's budget, DEFAULT_BUDGET filling what it leaves out (an absent or empty
    `budget` included), and the keys so filled."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise refusal(
            path, "budget", f"expected a mapping with some of {', '.join(BUDGET_KEYS)}, got {shown(data)}"
        )
    for key in data:
        if key not in BUDGET_KEYS:
            raise refusal(path, f"budget.{key}", f"unknown budget key{did_you_mean(key, BUDGET_KEYS)}")
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
        raise refusal(path, where, f"set by budget.{name}, not here")
    if name not in SETTING_TYPES:
        raise refusal(
            path, where, f"unknown trainer setting {shown(str(name))}{did_you_mean(name, SETTING_TYPES)}"
        )


def _parse_parameter(name: Any, spec: Any, path: Path) -> Parameter:
    where = f"parameters.{name}"
    _check_setting(name, where, path)
    if not isinstance(spec, dict):
        raise refusal(
            path,
            where,
            "expected a mapping: {values: [...]}, {value: ...} or "
            f"{{distribution: ..., min: ..., max: ...}}, got {shown(spec)}",
        )
    for key in spec:
        if key not in PARAMETER_KEYS:
            raise refusal(path, f"{where}.{key}", f"unknown key{did_you_mean(key, PARAMETER_KEYS)}")
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
        raise refusal(
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
            raise refusal(path, f"{where}.values", f"expected a non-empty list of choices, got {shown(raw)}")
        choices = [value_of(f"values[{i}]", v) for i, v in enumerate(raw)]
        for i, choice in enumerate(choices):
            if choice in choices[:i]:
                raise refusal(
                    path,
                    f"{where}.values[{i}]",
                    f"duplicate of values[{choices.index(choice)}] ({shown(plain_value(choice))})",
                )
        return Parameter(name, "categorical", choices=tuple(choices), when=when)
    return _parse_range(name, spec, where, when, path)


def _parse_range(
    name: str, spec: Mapping[str, Any], where: str, when: tuple[tuple[str, tuple], ...], path: Path
) -> Parameter:
    kind = base_type(name)
    if kind not in (int, float):
        raise refusal(
            path,
            where,
            f"a range needs a numeric setting, and {name} takes "
            f"{'a list' if kind is tuple else kind.__name__}: use values",
        )
    default = "int_uniform" if kind is int else "uniform"
    distribution = spec.get("distribution", default)
    if distribution not in DISTRIBUTIONS:
        raise refusal(
            path,
            f"{where}.distribution",
            f"unknown distribution {shown(distribution)}{did_you_mean(distribution, DISTRIBUTIONS)}",
        )
    if distribution == "uniform" and kind is int:
        raise refusal(path, f"{where}.distribution", f"{name} takes integers: use int_uniform or log_uniform")
    if distribution == "int_uniform" and kind is float:
        raise refusal(path, f"{where}.distribution", f"{name} takes numbers: use uniform or log_uniform")
    for key in ("min", "max"):
        if key not in spec:
            raise refusal(path, f"{where}.{key}", "missing; a range needs min and max")
    low = coerce(f"{where}.min", spec["min"], kind, source=str(path))
    high = coerce(f"{where}.max", spec["max"], kind, source=str(path))
    if low > high:
        raise refusal(path, f"{where}.min", f"expected min <= max ({shown(high)}), got {shown(low)}")
    if distribution == "log_uniform" and low <= 0:
        raise refusal(path, f"{where}.min", f"log_uniform needs min > 0, got {shown(low)}")
    step = None
    if "step" in spec:
        if distribution != "int_uniform":
            raise refusal(path, f"{where}.step", f"step goes with int_uniform only, not {distribution}")
        step = coerce(f"{where}.step", spec["step"], int, source=str(path))
        if step < 1 or (high - low) % step:
            raise refusal(
                path,
                f"{where}.step",
                f"expected an integer >= 1 that divides max - min ({shown(high - low)}), got {shown(step)}",
            )
    return Parameter(name, distribution, low=low, high=high, step=step, when=when)


def _parse_when(spec: Any, where: str, path: Path) -> tuple[tuple[str, tuple], ...]:
    if spec is None:
        return ()
    if not isinstance(spec, dict) or not spec:
        raise refusal(
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
            base_type(key) is not tuple or (accepted and all(isinstance(a, list) for a in accepted))
        )
        options = accepted if listed else [accepted]
        if not options:
            raise refusal(path, clause, "expected a value or a non-empty list of values")
        clauses.append((key, tuple(_setting(key, o, clause, path, check=False) for o in options)))
    return tuple(clauses)
