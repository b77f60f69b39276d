"""How much of a cluster one trial takes, and how many trials fit at once.

A trial is a Tune trial actor (a small CPU share) that starts one Ray Train worker
holding the rest of its CPUs and its GPUs. Tune cannot see the Train workers' placement
groups, so the number of concurrent trials comes from the cluster's totals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from collatz_ray.errors import UsageError

#: CPU reserved by each Tune trial actor, out of --cpus-per-trial; the Train worker that
#: does the work gets the rest, so N CPUs fit N trials of one CPU.
TRIAL_ACTOR_CPU = 0.1
#: Custom resource on the head node of cluster/*.yaml: trial actors stay off spot nodes.
DRIVER_RESOURCE = "tune_driver"
DRIVER_RESOURCE_SHARE = 0.001


def fitting_concurrency(resources: dict[str, float], *, cpus_per_trial: float,
                        gpus_per_trial: float) -> int:
    """How many trials fit at once in a cluster with these total `resources`."""
    limits = [math.floor((resources.get("CPU", 0) + 1e-9) / cpus_per_trial)]
    if gpus_per_trial > 0:
        limits.append(math.floor((resources.get("GPU", 0) + 1e-9) / gpus_per_trial))
    return max(1, min(limits))


def worker_resources(*, cpus_per_trial: float, gpus_per_trial: float) -> dict[str, float]:
    """What the trial's Train worker holds: the trial's CPUs less the actor's share."""
    resources = {"CPU": cpus_per_trial - TRIAL_ACTOR_CPU}
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
        """Torch threads of the trial's worker: its whole CPUs (at least one)."""
        return max(1, round(self.cpus))


def trial_resources(resources: dict[str, float], *, cpus_per_trial: float, gpus_per_trial: float | None,
                    saved_gpus: float | None = None) -> TrialResources:
    """Each trial's share of a cluster with these total `resources`, refused in one line
    when the cluster cannot hold one trial. GPUs default to the resumed experiment's
    (`saved_gpus`), else one per trial when the cluster has GPUs."""
    gpus = gpus_per_trial
    if gpus is None:
        gpus = saved_gpus if saved_gpus is not None else (1.0 if resources.get("GPU", 0) > 0 else 0.0)
    if gpus > 0 and resources.get("GPU", 0) <= 0:
        raise UsageError(f"--gpus-per-trial {gpus:g}: the cluster has no GPUs")
    if cpus_per_trial > resources.get("CPU", 0) + 1e-9:
        raise UsageError(f"--cpus-per-trial {cpus_per_trial:g}: the cluster has only "
                         f"{resources.get('CPU', 0):g} CPUs")
    fits = fitting_concurrency(resources, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus)
    return TrialResources(cpus_per_trial, gpus, fits)


def cpus_per_trial_flag(text: str) -> float:
    """--cpus-per-trial as the commands take it: room for the trial actor and a worker."""
    from collatz_ray._cli import number

    return number(float, lambda v: v >= 2 * TRIAL_ACTOR_CPU, f"a number >= {2 * TRIAL_ACTOR_CPU:g}")(text)
