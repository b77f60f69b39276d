"""The presets that shrink any space (`--smoke`, `--scale laptop`): the same question at
a smaller scale. Each maps the budget, the schedules (epoch counts), the sizes and the
layer stacks of a space, fixed, searched or left at the trainer's defaults."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from collatz_ray.errors import UsageError
from collatz_ray.search.spaces.budget import Budget, scaled_budget
from collatz_ray.trainer.config import TrainConfig

if TYPE_CHECKING:
    from collatz_ray.search.spaces.model import Parameter, SearchSpace

#: Scales `SearchSpace.scaled` knows: the suffix each adds to the space's name.
PRESETS = ("smoke", "laptop")

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

_TRAINER_DEFAULTS = TrainConfig()


def scaled(space: SearchSpace, preset: str | None) -> SearchSpace:
    """`space` at a preset's scale (PRESETS: "smoke", "laptop"), or as it is."""
    if preset is None:
        return space
    if preset not in PRESETS:
        raise UsageError(f"unknown scale {preset!r}; expected one of: {', '.join(PRESETS)}")
    return smoke(space) if preset == "smoke" else laptop(space)


def smoke(space: SearchSpace) -> SearchSpace:
    """The same question at toy scale, to check a whole search end to end on a CPU.

    A few trials of a few evaluations each; a tiny model (each distinct layer stack
    becomes a distinct tiny one); schedules (anchor decay, curriculum ramp, mining
    start and interval) scaled by the same factor as the epochs, so that mining
    still happens; batch and mining sizes capped. Settings the space leaves at
    their defaults get the same treatment, so the run stays tiny. Lookahead is
    kept: it is cheap at this size.
    """
    caps, full = SMOKE_BUDGET_MAX, space.budget
    # Each value is the space's checked one or a smaller cap, and the caps keep
    # eval_interval and grace_epochs within the epochs: the budget needs no new check.
    budget = Budget(
        epochs=min(full.epochs, caps["epochs"]),
        eval_interval=min(full.eval_interval, caps["eval_interval"]),
        grace_epochs=min(full.grace_epochs, caps["grace_epochs"]),
        reduction_factor=2,
        num_samples=min(full.num_samples, caps["num_samples"]),
    )
    factor = budget.epochs / full.epochs
    rules = _rules(factor, SCHEDULE_FIELDS, SMOKE_CAPS, _smoke_stacks(_stacks(space)))
    return _shrunk(space, "smoke", budget, rules)


def laptop(space: SearchSpace) -> SearchSpace:
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
    epochs = min(space.budget.epochs, LAPTOP_BUDGET_MAX["epochs"])
    # scaled_budget keeps eval_interval and grace_epochs within the epochs: no new check.
    values = scaled_budget(space.budget, epochs=epochs)
    values["num_samples"] = min(space.budget.num_samples, LAPTOP_BUDGET_MAX["num_samples"])
    factor = epochs / space.budget.epochs
    rules = _rules(factor, LAPTOP_SCHEDULE_FIELDS, LAPTOP_CAPS, _laptop_stacks(_stacks(space)))
    return _shrunk(space, "laptop", Budget(**values), rules)


def _stacks(space: SearchSpace) -> tuple[tuple[int, ...], ...]:
    """Every layer stack a trial of `space` can get."""
    searched = {p.name: p for p in space.parameters}
    if "layers" in searched:
        return searched["layers"].choices
    return (space.fixed.get("layers", _TRAINER_DEFAULTS.layers),)


def _shrunk(
    space: SearchSpace, preset: str, budget: Budget, rules: Mapping[str, Callable[[Any], Any]]
) -> SearchSpace:
    """`space` under a preset's budget and `rules`: each rule maps the values of one
    setting, fixed, searched or left at its default. The result is checked as any space."""
    searched = {p.name for p in space.parameters}
    fixed = dict(space.fixed)
    for name, rule in rules.items():
        current = fixed.get(name, getattr(_TRAINER_DEFAULTS, name))
        if name not in searched and rule(current) != current:
            fixed[name] = rule(current)
    return dataclasses.replace(
        space,
        name=f"{space.name}-{preset}",
        description=f"[{preset}] {space.description}",
        budget=budget,
        fixed=fixed,
        parameters=tuple(_shrink(p, rules) for p in space.parameters),
    )


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
