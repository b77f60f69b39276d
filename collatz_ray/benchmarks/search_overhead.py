"""The fixed cost of a search trial on this machine.

A trial wraps the trainer in a Ray Train TorchTrainer (controller, worker group,
placement group, checkpoint plumbing) before its first report. This measures, with trials
run one at a time on the embedded local Ray:
  * plain: a Tune function trial that reports at once (the floor any Tune trial pays),
  * ours:  a collatz trial of 2 epochs of a tiny model, start to first report, and how
           much of that the trainer itself spent (imports aside, the rest is Ray Train).
The overhead per trial is ours minus the trainer's own time; the ratio is against plain.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_OVERHEAD_S = 10.0

SPACE = """\
description: overhead probe, 2 epochs of an 8-wide model
budget: {epochs: 2, eval_interval: 2, grace_epochs: 2, reduction_factor: 2, num_samples: %d}
fixed: {layers: [8], batch_size: 64}
parameters:
  lookahead: {values: [5, 10]}
"""


def measure(trials: int) -> dict[str, Any]:
    """Run `trials` plain and `trials` collatz trials, one at a time, on an embedded Ray."""
    from collatz_ray.search.ray import cluster, probe, tuner
    from collatz_ray.search.settings import SearchSettings
    from collatz_ray.search.spaces import load_space

    with tempfile.TemporaryDirectory(prefix="collatz-bench-") as tmp:
        space_file = Path(tmp) / "probe.yaml"
        space_file.write_text(SPACE % trials)
        space = load_space(space_file)
        cluster.connect(None)
        try:
            plain_wall = probe.run_plain_trials(storage=tmp, experiment="plain", num_samples=trials)
            settings = SearchSettings(space=space, storage=tmp, experiment="ours",
                                      cpus_per_trial=1.0, gpus_per_trial=0.0, seed=0,
                                      max_concurrent=1)
            started = time.monotonic()
            grid = tuner.run(settings, num_samples=trials)
            ours_wall = time.monotonic() - started
            firsts = probe.first_report_seconds(grid)
        finally:
            cluster.shutdown()
    to_first = statistics.median(f["time_to_first_report"] for f in firsts)
    trainer = statistics.median(f["trainer_seconds"] for f in firsts)
    return {
        "trials": trials,
        "plain_seconds_per_trial": plain_wall / trials,
        "ours_seconds_per_trial": ours_wall / trials,
        "ours_time_to_first_report": to_first,
        "ours_trainer_seconds_to_first_report": trainer,
        "ours_fixed_overhead": to_first - trainer,
        "ratio_per_trial_vs_plain": ours_wall / plain_wall,
        "target_overhead_seconds": TARGET_OVERHEAD_S,
    }


def render(figures: dict[str, Any]) -> str:
    overhead = figures["ours_fixed_overhead"]
    return "\n".join([
        f"plain Tune trial, wall per trial:        {figures['plain_seconds_per_trial']:6.2f} s",
        f"collatz trial, wall per trial:           {figures['ours_seconds_per_trial']:6.2f} s "
        f"({figures['ratio_per_trial_vs_plain']:.1f}x plain)",
        f"collatz trial, start to first report:    {figures['ours_time_to_first_report']:6.2f} s (median)",
        f"  of which the trainer itself:           {figures['ours_trainer_seconds_to_first_report']:6.2f} s",
        f"  fixed overhead (Ray Train, imports):   {overhead:6.2f} s "
        f"(target < {TARGET_OVERHEAD_S:g} s: {'met' if overhead < TARGET_OVERHEAD_S else 'MISSED'})",
    ])
