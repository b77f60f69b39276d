"""How many trials fit a cluster, and what each trial's process holds."""

from __future__ import annotations

import pytest

from collatz_ray.search.resources import cpus_per_trial_flag, fitting_concurrency, trial_actor_resources


@pytest.mark.parametrize(
    "resources, cpus, gpus, expected",
    [
        ({"CPU": 2}, 1.0, 0.0, 2),
        ({"CPU": 2}, 0.5, 0.0, 4),
        ({"CPU": 3}, 2.0, 0.0, 1),
        ({"CPU": 1}, 2.0, 0.0, 1),  # never zero: the user asked for a search
        ({"CPU": 16, "GPU": 2}, 1.0, 1.0, 2),  # GPUs bind first
        ({"CPU": 16, "GPU": 2}, 1.0, 0.5, 4),  # fractions share a GPU
        ({"CPU": 3, "GPU": 8}, 1.0, 1.0, 3),  # then CPUs do
        ({"CPU": 0.3 + 0.3 + 0.3}, 0.3, 0.0, 3),  # float sums just under a whole count
    ],
)
def test_fitting_concurrency(resources, cpus, gpus, expected):
    assert fitting_concurrency(resources, cpus_per_trial=cpus, gpus_per_trial=gpus) == expected


def test_the_trial_process_holds_the_whole_trial():
    assert trial_actor_resources(cpus_per_trial=1.0, gpus_per_trial=0.0) == {"CPU": 1.0}
    assert trial_actor_resources(cpus_per_trial=2.0, gpus_per_trial=0.5) == {"CPU": 2.0, "GPU": 0.5}


@pytest.mark.parametrize("text", ["0", "0.05", "-1", "x"])
def test_cpus_per_trial_below_the_floor_is_refused(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        cpus_per_trial_flag(text)
    assert cpus_per_trial_flag("0.1") == pytest.approx(0.1)
