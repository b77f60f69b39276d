"""Sizing a search before it starts: the budget that a space file, a preset (--smoke,
--scale laptop), the budget flags and, on --resume, the experiment's saved settings make
together; the ASHA rungs of that budget; and what the search will cost.

The search command only parses flags and prints. The rules live here so that the plan
--dry-run prints and the search that runs come from one computation, and so that every
budget error names what the user typed: `--eval-interval 5000: expected at most
--epochs (3000)`, not the space file that never said 5000 next to 3000.

No Ray and no torch at import: `python -m collatz_ray.tune --space broken.yaml` refuses
before either loads. Only `dry_run` imports the trainer, to time a few epochs.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from collatz_ray.errors import UsageError
from collatz_ray.search.spaces import (
    BUDGET_KEYS,
    PRESETS,
    Budget,
    Origin,
    Parameter,
    SearchSpace,
    build_budget,
    plain_value,
    scaled_budget,
)
from collatz_ray.trainer.text import fitted_text

if TYPE_CHECKING:
    from collatz_ray.search.calibrate import Calibration

#: The flag that sets each budget key.
BUDGET_FLAGS = {
    "epochs": "--epochs",
    "eval_interval": "--eval-interval",
    "grace_epochs": "--grace-epochs",
    "reduction_factor": "--reduction-factor",
    "num_samples": "--num-samples",
}
#: Budget keys a resumed search keeps from its experiment whatever the flags say: its
#: trials' checkpoints were made at that evaluation interval (the trainer resumes a run
#: only with its own settings but epochs), and Tune restores its scheduler as saved.
RESUME_KEEPS = ("eval_interval", "reduction_factor")

#: A trial's fixed cost before its first epoch on a small machine (its process, the torch
#: import, the trainer's setup): `python -m collatz_ray.bench_search` measures it; see
#: docs/search.md ("What a trial costs") for the figures behind these two numbers.
TRIAL_START_S = 4.0
#: Each report's cost beyond the evaluation itself: the checkpoint and the report to
#: Tune (0.008 s median measured with a tiny model; rounded up for larger checkpoints).
REPORT_S = 0.05
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


def size_search(
    space: SearchSpace,
    *,
    flags: Mapping[str, int | None],
    preset: str | None = None,
    saved_budget: Mapping[str, Any] | None = None,
    experiment: str = "",
) -> Sizing:
    """The budget a search runs with, checked, its errors naming their sources.

    A new search (or a resume whose settings were not saved, which must repeat the
    original flags): the space's budget, shrunk by `preset`; then `--epochs`, when it
    changes the epochs, scales eval_interval and grace_epochs with it (same number of
    evaluations, rungs at the same fractions of the run) unless they are flags too;
    then the flags. A resume with saved settings (`saved_budget`): the experiment's
    budget, with epochs, grace_epochs and num_samples replaced by flags and nothing
    scaled, as before --eval-interval existed; eval_interval and reduction_factor stay.
    """
    given: dict[str, int] = {key: value for key, value in flags.items() if value is not None}
    for key in given:
        if key not in BUDGET_FLAGS:
            raise ValueError(f"not a budget key: {key}")
    if saved_budget is not None:
        return _resumed(space, given, saved_budget, experiment)
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"--scale {preset}: expected one of {', '.join(PRESETS)}")
    base = space.scaled(preset)
    origins = space.budget_origins()
    notes = []
    changed = _changes(space.budget, base.budget)
    if preset is not None and changed:
        notes.append(f"{_listed(changed)} set by {preset_flag(preset)}")
        origins.update({key: Origin("preset", preset_flag(preset)) for key, *_ in changed})
    values = dataclasses.asdict(base.budget)
    if "epochs" in given and given["epochs"] != values["epochs"]:
        keep = [key for key in ("eval_interval", "grace_epochs") if key in given]
        scaled = scaled_budget(base.budget, epochs=given["epochs"], keep=keep)
        by_epochs = [
            (key, values[key], scaled[key])
            for key in ("eval_interval", "grace_epochs")
            if key not in keep and scaled[key] != values[key]
        ]
        if by_epochs:
            notes.append(f"{_listed(by_epochs)} scaled with --epochs {given['epochs']}")
        for key, _, value in by_epochs:
            values[key] = value
            origins[key] = Origin("scaled", f"--epochs {given['epochs']}")
    for key, value in given.items():
        values[key] = value
        origins[key] = Origin("flag", BUDGET_FLAGS[key])
    budget = build_budget(values, origins)
    return Sizing(dataclasses.replace(base, budget=budget), space, preset, tuple(notes))


def _resumed(
    space: SearchSpace, flags: Mapping[str, int], saved: Mapping[str, Any], experiment: str
) -> Sizing:
    values = {key: saved.get(key, getattr(space.budget, key)) for key in BUDGET_KEYS}
    origins = {key: Origin("saved", experiment) for key in BUDGET_KEYS}
    for key in RESUME_KEEPS:
        if key in flags and flags[key] != values[key]:
            raise UsageError(
                f"{BUDGET_FLAGS[key]} {flags[key]}: experiment {experiment} runs with "
                f"{key} {values[key]}, which a resumed search keeps (its trials' "
                f"checkpoints and Tune's scheduler were made with it)"
            )
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
    return [
        (key, getattr(before, key), getattr(after, key))
        for key in BUDGET_KEYS
        if getattr(before, key) != getattr(after, key)
    ]


def _listed(changes: list[tuple[str, int, int]]) -> str:
    parts = [f"{key} {old}->{new}" for key, old, new in changes]
    return ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]


# -- ASHA ----------------------------------------------------------------------------


def judged_at(budget: Budget) -> list[int]:
    """The epochs at which trials are judged: ASHA acts on the first report at or past a
    rung, and reports come every eval_interval (and at the end)."""
    return [
        min(budget.epochs, -(-rung // budget.eval_interval) * budget.eval_interval) for rung in budget.rungs()
    ]


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


def estimate(
    budget: Budget, *, epoch_s: float, eval_s: float, concurrency: int, embedded: bool = True
) -> Estimate:
    """Wall time of a search whose every epoch takes `epoch_s` and every evaluation
    `eval_s`: trials x (start + expected epochs x epoch_s + expected reports x (report
    + eval_s)) / trials at once, plus starting Ray. Assumes ASHA's expected stops
    (`stages`), trials that keep their concurrency busy, and nothing else on the
    machine."""
    epochs = reports = 0.0
    previous = 0
    for end, count in stages(budget):
        epochs += count * (end - previous)
        reports += count * (
            math.ceil(end / budget.eval_interval) - math.ceil(previous / budget.eval_interval)
        )
        previous = end
    trials = budget.num_samples
    at_once = max(1, min(concurrency, trials))
    report_s = REPORT_S + eval_s
    per_trial = Estimate(
        0.0,
        at_once,
        epochs / trials,
        reports / trials,
        epoch_s,
        report_s,
        TRIAL_START_S,
        RAY_START_S if embedded else 0.0,
    )
    seconds = per_trial.fixed_s + trials * per_trial.trial_s / at_once
    return dataclasses.replace(per_trial, seconds=seconds)


# -- the lines printed ---------------------------------------------------------------


def plan_line(sizing: Sizing, *, concurrency: int, cpus: float, gpus: float, path: str) -> str:
    """The lines a search prints before it starts: the plan, what was scaled (wrapped to
    the terminal's 120 columns), then where it lands."""
    b = sizing.budget
    settings = f"  eval every {b.eval_interval}, ASHA grace {b.grace_epochs}, factor {b.reduction_factor}"
    return "\n".join(
        [
            f"Search '{sizing.space.name}': {b.num_samples} trials x {b.epochs} epochs, "
            f"{concurrency} at once, {cpus:g} CPU + {gpus:g} GPU each",
            *textwrap.wrap("; ".join([settings, *sizing.notes]), width=120, subsequent_indent="    "),
            f"Experiment: {path}",
        ]
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def preset_changes(sizing: Sizing) -> list[str]:
    """What the preset changed besides the budget: fixed settings and searched choices
    or ranges, as 'name: before -> after'."""
    if sizing.preset is None:
        return []
    from collatz_ray.trainer.config import TrainConfig

    before, after = sizing.original, sizing.space
    defaults = TrainConfig()
    out = []
    for name in sorted(set(before.fixed) | set(after.fixed)):
        old = before.fixed.get(name, getattr(defaults, name))
        new = after.fixed.get(name, getattr(defaults, name))
        if old != new:
            out.append(f"{name}: {plain_value(old)} -> {plain_value(new)}")
    for old_p, new_p in zip(before.parameters, after.parameters):
        if old_p != new_p:
            out.append(f"{old_p.name} (searched): {_domain(old_p)} -> {_domain(new_p)}")
    return out


def _domain(p: Parameter) -> str:
    if p.is_range:
        return f"{p.low}..{p.high}" + (f" step {p.step}" if p.step else "")
    return ", ".join(str(plain_value(c)) for c in p.choices) + (
        f" when {_condition(p.when)}" if p.when else ""
    )


def _condition(when: Any) -> str:
    """A parameter's condition (name -> allowed values, as pairs or a mapping) as a person
    reads it: `linear is false`, `a is 1 or 2`."""
    return " and ".join(
        f"{name} is {' or '.join(_word(v) for v in values)}" for name, values in dict(when).items()
    )


def _word(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(plain_value(value))


def dry_run(
    sizing: Sizing,
    *,
    address: str | None,
    cpus_per_trial: float,
    gpus_per_trial: float | None,
    saved_gpus: float | None,
    max_concurrent: int | None,
    path: str,
    eval_csv: str | None,
    resume: bool = False,
) -> str:
    """The plan of a search, without starting Ray or training a trial: trials, rungs,
    resources, where results go, and a time estimate from a few epochs timed here.
    With `address` the cluster is not contacted (joining it means starting a Ray
    driver): how many trials it fits is left to the search, unless --max-concurrent."""
    from collatz_ray.search import calibrate
    from collatz_ray.trainer.evalset_csv import CANONICAL_SAMPLES, load_evalset

    eval_rows = len(load_evalset(eval_csv)) if eval_csv else CANONICAL_SAMPLES
    lines = _search_lines(sizing, resume=resume)
    if address is None:
        placement = _on_this_machine(
            cpus_per_trial=cpus_per_trial,
            gpus_per_trial=gpus_per_trial,
            saved_gpus=saved_gpus,
            max_concurrent=max_concurrent,
        )
    else:
        placement = _on_a_cluster(
            address,
            cpus_per_trial=cpus_per_trial,
            gpus_per_trial=gpus_per_trial,
            saved_gpus=saved_gpus,
            max_concurrent=max_concurrent,
        )
    lines += placement.lines
    lines.append(f"  results:    {path}")
    cal = calibrate.calibrate(
        sizing.space, threads=placement.threads, device=placement.device, eval_rows=eval_rows
    )
    est, idle = _estimates(
        sizing.budget,
        cal,
        concurrency=placement.at_once or 1,
        embedded=address is None,
        device=placement.device,
    )
    lines += _time_lines(
        est,
        idle,
        cal,
        sizing.budget,
        address=address,
        known_concurrency=placement.at_once is not None,
        resume=resume,
    )
    return fitted_text("\n".join(lines))


def _search_lines(sizing: Sizing, *, resume: bool) -> list[str]:
    """The plan's first lines: the search, its trials, what sized the budget, what the
    preset changed, and ASHA's rungs with the trials expected to reach each stage."""
    b = sizing.budget
    space = sizing.space
    lines = ["Dry run: the plan of this search; nothing trained, Ray not started."]
    source = f"{space.path}" + (f", {preset_flag(sizing.preset)}" if sizing.preset else "")
    lines.append(f"Search '{space.name}' ({source})" + (" resumed" if resume else ""))
    lines.append(
        f"  trials:     {b.num_samples}, each at most {b.epochs} epochs, evaluated every "
        f"{b.eval_interval} ({b.evaluations} evaluations)"
    )
    for note in sizing.notes:
        lines.append(f"  budget:     {note}")
    for change in preset_changes(sizing):
        lines.append(f"  scale:      {change}")
    rungs, judged = b.rungs(), judged_at(b)
    if rungs:
        where = ", ".join(str(r) if r == j else f"{r} (judged at {j})" for r, j in zip(rungs, judged))
        flow = " -> ".join(f"{count:.3g}" for _, count in stages(b))
        lines.append(
            f"  ASHA:       grace {b.grace_epochs}, reduction factor {b.reduction_factor}: rungs at "
            f"epochs {where}, then the end at {b.epochs}"
        )
        lines.append(f"              trials expected to reach each stage: {flow} (results in random order)")
    else:
        lines.append(
            f"  ASHA:       grace {b.grace_epochs} >= epochs: no rung, every trial runs {b.epochs} epochs"
        )
    return lines


@dataclass(frozen=True)
class _Placement:
    """Where a dry run's trials would run: the plan's lines about it, the trials at once
    (None: unknown until the search joins its cluster), and the device and torch
    threads the calibration times a trial with."""

    lines: list[str]
    at_once: int | None
    device: str
    threads: int


def _on_this_machine(
    *,
    cpus_per_trial: float,
    gpus_per_trial: float | None,
    saved_gpus: float | None,
    max_concurrent: int | None,
) -> _Placement:
    """Trials on an embedded Ray here: their resources and how many fit."""
    from collatz_ray.search import calibrate
    from collatz_ray.search.resources import trial_resources

    local = calibrate.local_resources()
    res = trial_resources(
        local, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, saved_gpus=saved_gpus
    )
    at_once = max_concurrent or res.fits
    gpu_text = f" and {local['GPU']:g} GPUs" if local.get("GPU") else ""
    lines = [
        f"  per trial:  {res.cpus:g} CPU + {res.gpus:g} GPU ({res.threads} torch thread"
        f"{'s' if res.threads > 1 else ''})",
        f"  at once:    {at_once}"
        + (
            " (--max-concurrent)"
            if max_concurrent
            else f" (this machine's {local['CPU']:g} CPUs{gpu_text}, as an embedded Ray counts them)"
        ),
    ]
    return _Placement(lines, at_once, "cuda" if res.gpus > 0 else "cpu", res.threads)


def _on_a_cluster(
    address: str,
    *,
    cpus_per_trial: float,
    gpus_per_trial: float | None,
    saved_gpus: float | None,
    max_concurrent: int | None,
) -> _Placement:
    """Trials on the cluster at `address`, which a dry run does not contact."""
    from collatz_ray.search import calibrate

    gpus = gpus_per_trial if gpus_per_trial is not None else saved_gpus
    gpu_text = f"{gpus:g}" if gpus is not None else "1 if the cluster has GPUs, else 0"
    lines = [
        f"  per trial:  {cpus_per_trial:g} CPU + {gpu_text} GPU",
        "  at once:    "
        + (
            f"{max_concurrent} (--max-concurrent)"
            if max_concurrent
            else f"what the cluster at {address} fits, counted when the search "
            "joins it (a dry run does not contact the cluster)"
        ),
    ]
    # Timed on this machine: on its GPU if trials would get GPUs and it has one.
    on_gpu = (gpus or 0) > 0 and calibrate.local_resources().get("GPU", 0) > 0
    return _Placement(lines, max_concurrent, "cuda" if on_gpu else "cpu", max(1, round(cpus_per_trial)))


def _estimates(
    b: Budget, cal: Calibration, *, concurrency: int, embedded: bool, device: str
) -> tuple[Estimate, Estimate | None]:
    """The estimate at the wall time measured, and, when the machine was busier than its
    CPUs while timing, the one on free CPUs (None otherwise)."""
    est = estimate(b, epoch_s=cal.epoch_s, eval_s=cal.eval_s, concurrency=concurrency, embedded=embedded)
    # On a busy machine the wall clock measures the other users too; a trial's CPU time
    # says what it costs on cores of its own.
    busy = device == "cpu" and cal.load is not None and cal.load > cal.cpus
    if not busy:
        return est, None
    idle = estimate(
        b,
        epoch_s=min(cal.epoch_s, cal.epoch_cpu_s),
        eval_s=cal.eval_s,
        concurrency=concurrency,
        embedded=embedded,
    )
    return est, idle


def _seconds(seconds: float) -> str:
    return f"{seconds * 1000:.2g} ms" if seconds < 0.1 else f"{seconds:.2f} s"


def _time_lines(
    est: Estimate,
    idle: Estimate | None,
    cal: Calibration,
    b: Budget,
    *,
    address: str | None,
    known_concurrency: bool,
    resume: bool,
) -> list[str]:
    config = cal.config
    layers = "linear" if config.linear else "x".join(map(str, config.layers))
    what = (
        f"lookahead {config.lookahead}, layers {layers}, batch {config.batch_size}"
        + (", T4" if config.use_t4 else "")
        + (", T8" if config.use_t8 else "")
    )
    headline = est if idle is None else idle
    total = f"about {_duration(headline.seconds)}"
    if not known_concurrency:
        total += " one trial at a time; divide by the trials at once"
    if idle is not None:
        total += f" on free CPUs ({_duration(est.seconds)} at this machine's current load)"
    lines = [
        f"  time:       {total}; an estimate = {b.num_samples} trials x ({headline.start_s:.0f} s start + "
        f"{headline.epochs_per_trial:.0f} epochs x {_seconds(headline.epoch_s)} + "
        f"{headline.reports_per_trial:.1f} reports x {_seconds(headline.report_s)}) / {headline.concurrency} at once"
        + (f" + {headline.fixed_s:.0f} s to start Ray" if headline.fixed_s else ""),
        f"  calibrated: {cal.epochs} epochs of the costliest config the space samples ({what}) on this "
        f"machine's {cal.device.upper()}, {cal.threads} thread{'s' if cal.threads > 1 else ''}: "
        f"{_seconds(cal.epoch_s)} per epoch"
        + (f" ({_seconds(cal.epoch_cpu_s)} of CPU time)" if idle else "")
        + f"; an evaluation of {cal.eval_rows} rows {_seconds(cal.eval_s)}; took {cal.seconds:.0f} s",
        "  assumes:    every trial costs what that config costs (cheaper ones finish sooner), ASHA's "
        f"expected stops, {headline.start_s:.0f} s to start a trial and {REPORT_S:g} s per report "
        "(docs/search.md), and trials that do not slow each other down",
    ]
    if idle is not None:
        lines.append(
            f"  note:       this machine was busy while timing (load {cal.load:.1f} on {cal.cpus} CPUs)"
        )
    if address is not None:
        lines.append("  note:       timed on this machine, not on the cluster's nodes (GPUs there change it)")
    if resume:
        lines.append(
            "  note:       for the whole experiment; what its finished trials already did is not subtracted"
        )
    return lines
