"""Sizing a search before it starts: the budget that a space file, a preset (--smoke,
--scale laptop), the budget flags and, on --resume, the experiment's saved settings make
together; the ASHA rungs of that budget; and what the search will cost.

The search command only parses flags and prints. The rules live here so that the plan
--dry-run prints and the search that runs come from one computation, and so that every
budget error names what the user typed: `--eval-interval 5000: expected at most
--epochs (3000)`, not the space file that never said 5000 next to 3000.

No Ray and no torch: `python -m collatz_ray.tune --space broken.yaml` refuses before
either loads.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from collatz_ray.errors import UsageError
from collatz_ray.search.spaces import BUDGET_KEYS, PRESETS, Budget, Origin, SearchSpace, build_budget, scaled_budget

#: The flag that sets each budget key.
BUDGET_FLAGS = {"epochs": "--epochs", "eval_interval": "--eval-interval", "grace_epochs": "--grace-epochs",
                "reduction_factor": "--reduction-factor", "num_samples": "--num-samples"}
#: Budget keys a resumed search keeps from its experiment whatever the flags say: its
#: trials' checkpoints were made at that evaluation interval (the trainer resumes a run
#: only with its own settings but epochs), and Tune restores its scheduler as saved.
RESUME_KEEPS = ("eval_interval", "reduction_factor")

#: A trial's fixed cost before its first epoch under Ray Train on a small machine
#: (controller, worker group, placement group, imports): `python -m collatz_ray.bench_search`
#: measures it; see docs/search.md for the figures behind these two numbers.
TRIAL_START_S = 15.0
#: Each report's cost beyond the evaluation itself (checkpoint upload, Train to Tune).
REPORT_S = 2.0
#: Starting an embedded Ray before the first trial.
RAY_START_S = 10.0


def preset_flag(preset: str) -> str:
    return "--smoke" if preset == "smoke" else f"--scale {preset}"


@dataclass(frozen=True)
class Sizing:
    """The space a search runs, at its final budget, and what produced that budget."""

    space: SearchSpace
    #: The space before any preset (its own file's budget), to say what a preset changed.
    original: SearchSpace
    preset: str | None
    #: What was scaled, set by a preset, or taken from a resumed experiment, as short
    #: phrases for the plan line ("eval_interval 5000->150 and grace_epochs 20000->600
    #: scaled with --epochs 3000").
    notes: tuple[str, ...]

    @property
    def budget(self) -> Budget:
        return self.space.budget


def size_search(space: SearchSpace, *, flags: Mapping[str, int | None], preset: str | None = None,
                saved_budget: Mapping[str, Any] | None = None, experiment: str = "") -> Sizing:
    """The budget a search runs with, checked, its errors naming their sources.

    A new search (or a resume whose settings were not saved, which must repeat the
    original flags): the space's budget, shrunk by `preset`; then `--epochs`, when it
    changes the epochs, scales eval_interval and grace_epochs with it (same number of
    evaluations, rungs at the same fractions of the run) unless they are flags too;
    then the flags. A resume with saved settings (`saved_budget`): the experiment's
    budget, with epochs, grace_epochs and num_samples replaced by flags and nothing
    scaled, as before --eval-interval existed; eval_interval and reduction_factor stay.
    """
    flags = {key: value for key, value in flags.items() if value is not None}
    for key in flags:
        if key not in BUDGET_FLAGS:
            raise ValueError(f"not a budget key: {key}")
    if saved_budget is not None:
        return _resumed(space, flags, saved_budget, experiment)
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"--scale {preset}: expected one of {', '.join(PRESETS)}")
    base = space.scaled(preset)
    origins = space.budget_origins()
    notes = []
    changed = _changes(space.budget, base.budget)
    if changed:
        notes.append(f"{_listed(changed)} set by {preset_flag(preset)}")
        origins.update({key: Origin("preset", preset_flag(preset)) for key, *_ in changed})
    values = dataclasses.asdict(base.budget)
    if "epochs" in flags and flags["epochs"] != values["epochs"]:
        keep = [key for key in ("eval_interval", "grace_epochs") if key in flags]
        scaled = scaled_budget(base.budget, epochs=flags["epochs"], keep=keep)
        by_epochs = [(key, values[key], scaled[key]) for key in ("eval_interval", "grace_epochs")
                     if key not in keep and scaled[key] != values[key]]
        if by_epochs:
            notes.append(f"{_listed(by_epochs)} scaled with --epochs {flags['epochs']}")
        for key, _, value in by_epochs:
            values[key] = value
            origins[key] = Origin("scaled", f"--epochs {flags['epochs']}")
    for key, value in flags.items():
        values[key] = value
        origins[key] = Origin("flag", BUDGET_FLAGS[key])
    budget = build_budget(values, origins)
    return Sizing(dataclasses.replace(base, budget=budget), space, preset, tuple(notes))


def _resumed(space: SearchSpace, flags: Mapping[str, int], saved: Mapping[str, Any],
             experiment: str) -> Sizing:
    values = {key: saved.get(key, getattr(space.budget, key)) for key in BUDGET_KEYS}
    origins = {key: Origin("saved", experiment) for key in BUDGET_KEYS}
    for key in RESUME_KEEPS:
        if key in flags and flags[key] != values[key]:
            raise UsageError(f"{BUDGET_FLAGS[key]} {flags[key]}: experiment {experiment} runs with "
                             f"{key} {values[key]}, which a resumed search keeps (its trials' "
                             f"checkpoints and Tune's scheduler were made with it)")
    before = dict(values)
    for key, value in flags.items():
        values[key] = value
        origins[key] = Origin("flag", BUDGET_FLAGS[key])
    budget = build_budget(values, origins)
    changed = [(key, before[key], values[key]) for key in BUDGET_KEYS if before[key] != values[key]]
    notes = [f"experiment {experiment}'s budget"]
    if changed:
        notes.append(f"{_listed(changed)} by flags")
    return Sizing(dataclasses.replace(space, budget=budget), space, None, tuple(notes))


def _changes(before: Budget, after: Budget) -> list[tuple[str, int, int]]:
    return [(key, getattr(before, key), getattr(after, key)) for key in BUDGET_KEYS
            if getattr(before, key) != getattr(after, key)]


def _listed(changes: list[tuple[str, int, int]]) -> str:
    parts = [f"{key} {old}->{new}" for key, old, new in changes]
    return ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]


# -- ASHA ----------------------------------------------------------------------------


def judged_at(budget: Budget) -> list[int]:
    """The epochs at which trials are judged: ASHA acts on the first report at or past a
    rung, and reports come every eval_interval (and at the end)."""
    return [min(budget.epochs, -(-rung // budget.eval_interval) * budget.eval_interval)
            for rung in budget.rungs()]


def promoted(arrivals: float, reduction_factor: int) -> float:
    """Expected trials that pass a rung, of `arrivals` reaching it one at a time with
    results in random order. Ray's ASHA lets the first pass and then any trial at or
    above the (1 - 1/rf) quantile of those recorded before it: trial i passes with
    probability (i - 1 - (i - 2) q) / i, q = 1 - 1/rf, which tends to 1/rf; so few
    trials pass more often than 1 in rf."""
    q = 1 - 1 / reduction_factor

    def chance(i: int) -> float:
        return 1.0 if i == 1 else (i - 1 - (i - 2) * q) / i

    whole = int(arrivals)
    return sum(chance(i) for i in range(1, whole + 1)) + (arrivals - whole) * chance(whole + 1)


def stages(budget: Budget) -> list[tuple[int, float]]:
    """(epoch a stage ends at, expected trials that train through it): up to the first
    judged rung, then to the next, ..., then to the end."""
    ends = [*dict.fromkeys(judged_at(budget))]
    ends = [end for end in ends if end < budget.epochs] + [budget.epochs]
    out, count = [], float(budget.num_samples)
    for end in ends:
        out.append((end, count))
        count = promoted(count, budget.reduction_factor)
    return out


@dataclass(frozen=True)
class Estimate:
    """A search's expected wall time, and what it is made of."""

    seconds: float
    concurrency: int
    epochs_per_trial: float
    reports_per_trial: float
    epoch_s: float
    report_s: float
    start_s: float
    fixed_s: float

    @property
    def trial_s(self) -> float:
        return self.start_s + self.epochs_per_trial * self.epoch_s + self.reports_per_trial * self.report_s


def estimate(budget: Budget, *, epoch_s: float, eval_s: float, concurrency: int,
             embedded: bool = True) -> Estimate:
    """Wall time of a search whose every epoch takes `epoch_s` and every evaluation
    `eval_s`: trials x (start + expected epochs x epoch_s + expected reports x (report
    + eval_s)) / trials at once, plus starting Ray. Assumes ASHA's expected stops
    (`stages`), trials that keep their concurrency busy, and nothing else on the
    machine."""
    epochs = reports = 0.0
    previous = 0
    for end, count in stages(budget):
        epochs += count * (end - previous)
        reports += count * (math.ceil(end / budget.eval_interval) - math.ceil(previous / budget.eval_interval))
        previous = end
    trials = budget.num_samples
    at_once = max(1, min(concurrency, trials))
    report_s = REPORT_S + eval_s
    per_trial = Estimate(0.0, at_once, epochs / trials, reports / trials, epoch_s, report_s,
                         TRIAL_START_S, RAY_START_S if embedded else 0.0)
    seconds = per_trial.fixed_s + trials * per_trial.trial_s / at_once
    return dataclasses.replace(per_trial, seconds=seconds)


# -- the lines printed ---------------------------------------------------------------


def plan_line(sizing: Sizing, *, concurrency: int, cpus: float, gpus: float, path: str) -> str:
    """The one line a search prints before it starts."""
    b = sizing.budget
    notes = "".join(f"; {note}" for note in sizing.notes)
    return (f"Search '{sizing.space.name}': {b.num_samples} trials x {b.epochs} epochs "
            f"(eval every {b.eval_interval}, ASHA grace {b.grace_epochs}, factor {b.reduction_factor}{notes}); "
            f"{concurrency} at once, {cpus:g} CPU + {gpus:g} GPU each; experiment {path}")
