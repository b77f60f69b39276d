"""The trainer's single typed configuration (docs/method.md).

One frozen dataclass holds every knob the search turns. Its defaults are the method's
constants and the published log's setup; it is validated on construction, saved inside
every checkpoint and run directory, and built from a YAML file, a dict from a search
space, or command-line flags, all through `TrainConfig.from_dict`, so every way in is
checked the same way.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collatz_ray._yaml import load_yaml
from collatz_ray.errors import UsageError, shown
from collatz_ray.syracuse.arith import DEFAULT_TEST_SEEDS, MAX_BITS

if TYPE_CHECKING:
    import argparse

#: The published runs' 9-layer stack (4,405,250 parameters at lookahead 10).
LOG_LAYERS: tuple[int, ...] = (2048, 1024, 1024, 512, 512, 512, 256, 128, 64)

TARGET_TYPES = ("fixed", "adaptive", "split")
DEVICES = ("auto", "cpu", "cuda")
#: The largest integer setting: sizes, counts and epochs past it are typos, and numpy and
#: torch take every integer up to it (larger ones overflow their C types).
MAX_INT = 2**31 - 1
#: The most banked numbers a run adds to its hard pool: as many as the mined pool holds.
MAX_BANK_SEEDS = 1000
#: Seeds go to torch.manual_seed and numpy's generators: 32 bits, not negative.
MAX_SEED = 2**32 - 1


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class TrainConfig:
    # Model
    layers: tuple[int, ...] = field(default=LOG_LAYERS, metadata=_doc("hidden widths, e.g. 128,128,128"))
    linear: bool = field(default=False, metadata=_doc("no hidden layers"))
    # Features
    lookahead: int = field(default=10, metadata=_doc("length L of the k-sequence"))
    k_only: bool = field(default=False, metadata=_doc("only the L k columns"))
    k_shifted: bool = field(default=False, metadata=_doc("k columns as (min(k,10)-2)/10"))
    # Loss
    use_t1: bool = field(default=True, metadata=_doc("rank V(n) above V(T n)"))
    use_t4: bool = field(default=False, metadata=_doc("rank V(n) above V(T^4 n), weight 0.5"))
    use_t8: bool = field(default=False, metadata=_doc("rank V(n) above V(T^8 n), weight 0.2"))
    target_type: str = field(default="fixed", metadata=_doc("anchor target: fixed, adaptive or split"))
    beta_init: float = field(default=0.35, metadata=_doc("fixed beta, and the start of the learned one"))
    margin: float = field(default=0.05, metadata=_doc("ranking margin"))
    decay_start: int = field(default=1000, metadata=_doc("epoch where the anchor weight starts to decay"))
    decay_len: int = field(default=5000, metadata=_doc("epochs over which the anchor decays"))
    min_anchor: float = field(default=0.0, metadata=_doc("anchor weight floor"))
    # Optimiser
    lr: float = field(default=1e-3, metadata=_doc("AdamW learning rate"))
    lr_factor: float = field(default=0.5, metadata=_doc("ReduceLROnPlateau factor"))
    lr_patience: int = field(default=2000, metadata=_doc("ReduceLROnPlateau patience (epochs)"))
    # Data
    batch_size: int = field(default=1024, metadata=_doc("rows per epoch (one epoch = one batch)"))
    max_bits: int = field(default=128, metadata=_doc("bit size of random training numbers"))
    hard_ratio: float = field(default=0.25, metadata=_doc("share of the batch from the hard pool"))
    num_hard_seeds: int | None = field(
        default=None, metadata=_doc("use only the first N training seeds (default: all)")
    )
    test_seeds: tuple[int, ...] = field(default=DEFAULT_TEST_SEEDS, metadata=_doc("held-out seeds"))
    curriculum: bool = field(default=False, metadata=_doc("ramp the active training seeds"))
    start_seeds: int = field(default=30, metadata=_doc("curriculum: seeds active at epoch 0"))
    ramp_len: int = field(default=25000, metadata=_doc("curriculum: epochs to reach all seeds"))
    mine_negatives: bool = field(default=False, metadata=_doc("hard-negative mining"))
    mine_start: int | None = field(default=None, metadata=_doc("first mining epoch (default: the interval)"))
    mine_interval: int = field(default=5000, metadata=_doc("epochs between mining rounds"))
    mine_count: int = field(default=50, metadata=_doc("numbers kept per mining round"))
    mine_pool: int = field(default=5000, metadata=_doc("numbers scored per mining round"))
    hard_seed_bank: str | None = field(
        default=None,
        metadata=_doc(
            "counterexample bank (an experiment directory or its counterexamples.jsonl) whose numbers "
            "join the hard pool (default: none)"
        ),
    )
    hard_seed_bank_count: int = field(default=100, metadata=_doc("banked numbers used, worst margin first"))
    # Run
    epochs: int = field(default=100_000, metadata=_doc("training epochs"))
    eval_interval: int = field(default=5000, metadata=_doc("epochs between evaluations and checkpoints"))
    seed: int = field(default=0, metadata=_doc("random seed (same seed and device -> same metrics)"))
    device: str = field(default="auto", metadata=_doc("auto, cpu or cuda"))
    eval_csv: str | None = field(default=None, metadata=_doc("evaluation CSV (default: the canonical set)"))

    def __post_init__(self) -> None:
        _validate(self)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(
        cls, values: Mapping[str, Any], *, source: str = "config", base: TrainConfig | None = None
    ) -> TrainConfig:
        """Build from a mapping of field names to values, each coerced and checked.

        `source` names where the values came from (a file, a flag set) in error lines.
        Values not given keep those of `base` (default: the method's defaults).
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        merged = dataclasses.asdict(base) if base is not None else {}
        for key, value in values.items():
            if key not in known:
                raise UsageError(f"{source}: unknown key {shown(key)}; expected one of: {', '.join(known)}")
            merged[key] = coerce(key, value, known[key].type, source=source)
        try:
            return cls(**merged)
        except UsageError as err:
            raise UsageError(f"{source}: {err}") from None

    @classmethod
    def from_yaml(cls, path: str | Path, *, base: TrainConfig | None = None) -> TrainConfig:
        path = Path(path)
        data = load_yaml(path)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise UsageError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
        return cls.from_dict(data, source=str(path), base=base)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-friendly values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict(changes, source="override", base=self)

    def diff(self, other: TrainConfig | None = None) -> dict[str, Any]:
        """Fields that differ from `other` (default: the method's defaults)."""
        other = other or TrainConfig()
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: v for k, v in mine.items() if v != theirs[k]}

    # -- derived quantities -------------------------------------------------------------
    @property
    def hidden_layers(self) -> tuple[int, ...]:
        return () if self.linear else self.layers

    @property
    def first_mining_epoch(self) -> int:
        return self.mine_interval if self.mine_start is None else self.mine_start

    @property
    def extra_steps(self) -> int:
        """How far beyond n the k-sequence must reach: T(n), and T^4 / T^8 when used."""
        return 8 if self.use_t8 else 4 if self.use_t4 else 1


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(TrainConfig))


def field_type(name: str) -> Any:
    return {f.name: f.type for f in dataclasses.fields(TrainConfig)}[name]


def _resolve(annotation: Any) -> Any:
    if isinstance(annotation, str):  # postponed annotations
        return eval(
            annotation, {**vars(typing), "tuple": tuple, "int": int, "float": float, "str": str, "bool": bool}
        )
    return annotation


def coerce(key: str, value: Any, annotation: Any, *, source: str) -> Any:
    """Check and convert one value to the field's type; one clear line when it is wrong."""
    annotation = _resolve(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        (annotation,) = [a for a in args if a is not type(None)]
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)

    def bad(expected: str) -> UsageError:
        return UsageError(f"{source}: key {shown(key)} expected {expected}, got {shown(value)}")

    if origin is tuple:
        items = value
        if isinstance(value, str):
            items = [part for part in value.replace(" ", "").split(",") if part]
        if isinstance(value, int) and not isinstance(value, bool):
            items = [value]
        if not isinstance(items, (list, tuple)):
            raise bad("a list of integers")
        out = []
        for item in items:
            item = _int_or_none(item) if isinstance(item, str) else item
            if not isinstance(item, int) or isinstance(item, bool):
                raise bad("a list of integers")
            out.append(item)
        return tuple(out)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise bad("true or false")
    if annotation is int:
        number = value
        if isinstance(value, str):
            number = _int_or_none(value)
            number = _float_or_none(value) if number is None else number
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        if not isinstance(number, int) or isinstance(number, bool):
            raise bad("an integer")
        return number
    if annotation is float:
        number = _float_or_none(value) if isinstance(value, str) else value
        if not isinstance(number, (int, float)) or isinstance(number, bool):
            raise bad("a number")
        try:
            return float(number)
        except OverflowError:  # an int beyond 1e308
            raise bad("a number") from None
    if annotation is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    raise TypeError(f"unsupported config annotation {annotation!r} for {key}")


def _int_or_none(text: str) -> int | None:
    """int(text), or None for text that is no integer (or has more than the 4300 digits
    Python reads)."""
    try:
        return int(text)
    except ValueError:
        return None


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _validate(c: TrainConfig) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise UsageError(message)

    need(c.lookahead >= 1, f"lookahead must be >= 1, got {shown(c.lookahead)}")
    need(c.linear or len(c.layers) > 0, "layers must name at least one hidden width unless linear is set")
    need(all(w >= 1 for w in c.layers), f"layers must be positive widths, got {shown(list(c.layers))}")
    need(
        c.target_type in TARGET_TYPES,
        f"target_type must be one of {', '.join(TARGET_TYPES)}, got {shown(c.target_type)}",
    )
    need(c.use_t1 or c.use_t4 or c.use_t8, "at least one of use_t1, use_t4, use_t8 must be on")
    need(math.isfinite(c.lr) and c.lr > 0, f"lr must be a positive number, got {shown(c.lr)}")
    need(0 < c.lr_factor < 1, f"lr_factor must be in (0, 1), got {shown(c.lr_factor)}")
    need(c.lr_patience >= 0, f"lr_patience must be >= 0, got {shown(c.lr_patience)}")
    need(math.isfinite(c.margin) and c.margin >= 0, f"margin must be >= 0, got {shown(c.margin)}")
    need(math.isfinite(c.beta_init), f"beta_init must be finite, got {shown(c.beta_init)}")
    need(c.decay_start >= 0, f"decay_start must be >= 0, got {shown(c.decay_start)}")
    need(c.decay_len >= 1, f"decay_len must be >= 1, got {shown(c.decay_len)}")
    need(0 <= c.min_anchor <= 1, f"min_anchor must be in [0, 1], got {shown(c.min_anchor)}")
    need(c.batch_size >= 1, f"batch_size must be >= 1, got {shown(c.batch_size)}")
    need(
        6 <= c.max_bits <= MAX_BITS,
        f"max_bits must be from 6 (random bit lengths run from 2 to "
        f"max_bits-4) to {MAX_BITS} (the largest integers the arithmetic takes), got {shown(c.max_bits)}",
    )
    need(0 <= c.hard_ratio <= 1, f"hard_ratio must be in [0, 1], got {shown(c.hard_ratio)}")
    need(
        c.num_hard_seeds is None or c.num_hard_seeds >= 1,
        f"num_hard_seeds must be >= 1, got {shown(c.num_hard_seeds)}",
    )
    # Held-out trajectories are featurised like any number: below 2^MAX_BITS.
    need(
        len(c.test_seeds) >= 1 and all(1 <= s and s.bit_length() <= MAX_BITS for s in c.test_seeds),
        f"test_seeds must be integers from 1 to 2^{MAX_BITS}-1, got {shown(list(c.test_seeds))}",
    )
    need(c.start_seeds >= 0, f"start_seeds must be >= 0, got {shown(c.start_seeds)}")
    need(c.ramp_len >= 1, f"ramp_len must be >= 1, got {shown(c.ramp_len)}")
    need(c.mine_start is None or c.mine_start >= 1, f"mine_start must be >= 1, got {shown(c.mine_start)}")
    need(c.mine_interval >= 1, f"mine_interval must be >= 1, got {shown(c.mine_interval)}")
    need(c.mine_count >= 1, f"mine_count must be >= 1, got {shown(c.mine_count)}")
    need(
        c.mine_pool >= c.mine_count,
        f"mine_pool must be >= mine_count ({shown(c.mine_count)}), got {shown(c.mine_pool)}",
    )
    need(
        c.hard_seed_bank is None or c.hard_seed_bank.strip() != "",
        "hard_seed_bank must name an experiment directory or a counterexamples.jsonl file, got ''",
    )
    need(
        1 <= c.hard_seed_bank_count <= MAX_BANK_SEEDS,
        f"hard_seed_bank_count must be from 1 to {MAX_BANK_SEEDS}, got {shown(c.hard_seed_bank_count)}",
    )
    need(c.epochs >= 1, f"epochs must be >= 1, got {shown(c.epochs)}")
    need(c.eval_interval >= 1, f"eval_interval must be >= 1, got {shown(c.eval_interval)}")
    need(c.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, got {shown(c.device)}")
    need(0 <= c.seed <= MAX_SEED, f"seed must be an integer from 0 to {MAX_SEED}, got {shown(c.seed)}")
    for name in field_names():
        if name in ("seed", "max_bits", "test_seeds"):
            continue  # bounded above
        value = getattr(c, name)
        values = value if isinstance(value, tuple) else (value,)
        need(
            all(not isinstance(v, int) or v <= MAX_INT for v in values),
            f"{name} must be at most {MAX_INT}, got {shown(value)}",
        )


# -- command-line flags ---------------------------------------------------------------
#: Where the original experiment's flag differs from `--field-name`.
FLAG_ALIASES = {
    "mine_negatives": ("--mine-negatives", "--mine"),
    "use_t4": ("--use-t4", "--t4"),
    "use_t8": ("--use-t8", "--t8"),
}


def add_config_flags(parser: argparse.ArgumentParser, *, names: tuple[str, ...] | None = None) -> None:
    """One flag per TrainConfig field (`--lookahead`, `--ramp-len`, `--use-t4`/`--no-use-t4`
    ...). Flags default to 'not given', so files and presets underneath them survive."""
    import argparse

    for f in dataclasses.fields(TrainConfig):
        if names is not None and f.name not in names:
            continue
        flags = FLAG_ALIASES.get(f.name, ("--" + f.name.replace("_", "-"),))
        annotation = _resolve(f.type)
        help_text = f.metadata.get("help", "") + _default_words(f.default, flags)
        if annotation is bool:
            parser.add_argument(
                *flags,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            parser.add_argument(*flags, dest=f.name, default=argparse.SUPPRESS, metavar="V", help=help_text)


def _default_words(default: Any, flags: tuple[str, ...]) -> str:
    """' (default: ...)' as --help shows it: a switch's default as its flag, a list as
    16,16; nothing where the help text says what an unset setting means."""
    if default is None:
        return ""
    if isinstance(default, bool):
        on = flags[0]
        return f" (default: {on if default else '--no-' + on.removeprefix('--')})"
    if isinstance(default, tuple):
        return f" (default: {','.join(map(str, default))})"
    return f" (default: {default})"


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields given on the command line, as raw strings for from_dict."""
    names = set(field_names())
    return {k: v for k, v in vars(args).items() if k in names}
