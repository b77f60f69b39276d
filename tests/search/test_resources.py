"""How many trials fit a cluster, and what each trial's Train worker holds."""

from __future__ import annotations

import pytest

from collatz_ray.search.resources import TRIAL_ACTOR_CPU, fitting_concurrency, worker_resources


@pytest.mark.parametrize("resources, cpus, gpus, expected", [
    ({"CPU": 2}, 1.0, 0.0, 2),
    ({"CPU": 2}, 0.5, 0.0, 4),
    ({"CPU": 3}, 2.0, 0.0, 1),
    ({"CPU": 1}, 2.0, 0.0, 1),            # never zero: the user asked for a search
    ({"CPU": 16, "GPU": 2}, 1.0, 1.0, 2),  # GPUs bind first
    ({"CPU": 16, "GPU": 2}, 1.0, 0.5, 4),  # fractions share a GPU
    ({"CPU": 3, "GPU": 8}, 1.0, 1.0, 3),   # then CPUs do
    ({"CPU": 0.3 + 0.3 + 0.3}, 0.3, 0.0, 3),  # float sums just under a whole count
])
def test_fitting_concurrency(resources, cpus, gpus, expected):
    assert fitting_concurrency(resources, cpus_per_trial=cpus, gpus_per_trial=gpus) == expected


def test_the_worker_gets_the_trial_cpus_less_the_actor_share():
    assert worker_resources(cpus_per_trial=1.0, gpus_per_trial=0.0) == \
        {"CPU": pytest.approx(1.0 - TRIAL_ACTOR_CPU)}
    assert worker_resources(cpus_per_trial=2.0, gpus_per_trial=0.5) == \
        {"CPU": pytest.approx(2.0 - TRIAL_ACTOR_CPU), "GPU": 0.5}
