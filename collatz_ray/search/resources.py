"""How much of a cluster one trial takes, and how many trials fit at once.

A trial is a Tune trial actor (a small CPU share) that starts one Ray Train worker
holding the rest of its CPUs and its GPUs. Tune cannot see the Train workers' placement
groups, so the number of concurrent trials comes from the cluster's totals.
"""

from __future__ import annotations

import math

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
