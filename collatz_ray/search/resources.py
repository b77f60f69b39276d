"""How much of a cluster one trial takes, and how many trials fit at once.

A trial is one Tune trial actor that trains in its own process (Ray Train's local
mode) and holds all of the trial's CPUs and GPUs. The number of concurrent trials comes
from the cluster's totals, so that a search started on a cluster that is still growing
asks for what it was sized for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from collatz_ray.errors import UsageError

#: The smallest --cpus-per-trial: fractions below it would pack more trial processes on
#: a CPU than Ray's scheduler can tell apart.
MIN_CPUS_PER_TRIAL = 0.1


def fitting_concurrency(resources: dict[str, float], *, cpus_per_trial: float, gpus_per_trial: float) -> int:
    """How many trials fit at once in a cluster with these total `resources`."""
    limits = [math.floor((resources.get("CPU", 0) + 1e-9) / cpus_per_trial)]
    if gpus_per_trial > 0:
        limits.append(math.floor((resources.get("GPU", 0) + 1e-9) / gpus_per_trial))
    return max(1, min(limits))


def trial_actor_resources(*, cpus_per_trial: float, gpus_per_trial: float) -> dict[str, float]:
    """What the trial's process holds: the whole trial (it is Train's local-mode worker)."""
    resources = {"CPU": cpus_per_trial}
    if gpus_per_trial > 0:
        resources["GPU"] = gpus_per_trial
    return resources


@dataclass(frozen=True)
class TrialResources:
    """What each trial holds, and how many such trials the cluster fits at once."""

    cpus: float
    gpus: float
    fits: int

    @property
    def threads(self) -> int:
        """Torch threads of the trial's process: its whole CPUs (at least one)."""
        return max(1, round(self.cpus))


def trial_resources(
    resources: dict[str, float],
    *,
    cpus_per_trial: float,
    gpus_per_trial: float | None,
    saved_gpus: float | None = None,
) -> TrialResources:
    """Each trial's share of a cluster with these total `resources`, refused in one line
    when the cluster cannot hold one trial. GPUs default to the resumed experiment's
    (`saved_gpus`), else one per trial when the cluster has GPUs."""
    gpus = gpus_per_trial
    if gpus is None:
        gpus = saved_gpus if saved_gpus is not None else (1.0 if resources.get("GPU", 0) > 0 else 0.0)
    if gpus > 0 and resources.get("GPU", 0) <= 0:
        raise UsageError(f"--gpus-per-trial {gpus:g}: the cluster has no GPUs")
    if cpus_per_trial > resources.get("CPU", 0) + 1e-9:
        raise UsageError(
            f"--cpus-per-trial {cpus_per_trial:g}: the cluster has only {resources.get('CPU', 0):g} CPUs"
        )
    fits = fitting_concurrency(resources, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus)
    return TrialResources(cpus_per_trial, gpus, fits)


def cpus_per_trial_flag(text: str) -> float:
    """--cpus-per-trial as the commands take it."""
    from collatz_ray._cli import number

    return number(float, lambda v: v >= MIN_CPUS_PER_TRIAL, f"a number >= {MIN_CPUS_PER_TRIAL:g}")(text)
