"""python -m collatz_ray.bench_search: the fixed cost of a search trial on this machine.

A trial wraps the trainer in a Ray Train TorchTrainer (controller, worker group,
placement group, checkpoint plumbing) before its first report. This measures, with trials
run one at a time on the embedded local Ray:
  * plain: a Tune function trial that reports at once (the floor any Tune trial pays),
  * ours:  a collatz trial of 2 epochs of a tiny model, start to first report, and how
           much of that the trainer itself spent (imports aside, the rest is Ray Train).
The overhead per trial is ours minus the trainer's own time; the ratio is against plain.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

SPACE = """\
description: overhead probe, 2 epochs of an 8-wide model
budget: {epochs: 2, eval_interval: 2, grace_epochs: 2, reduction_factor: 2, num_samples: %d}
fixed: {layers: [8], batch_size: 64}
parameters:
  lookahead: {values: [5, 10]}
"""


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m collatz_ray.bench_search", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=3, help="trials of each kind (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()

    from collatz_ray import ray_adapter as ra
    from collatz_ray.spaces import load_space

    with tempfile.TemporaryDirectory(prefix="collatz-bench-") as tmp:
        space_file = Path(tmp) / "probe.yaml"
        space_file.write_text(SPACE % args.trials)
        space = load_space(space_file)
        ra.connect(None)
        try:
            plain_wall = ra.run_plain_trials(storage=tmp, experiment="plain", num_samples=args.trials)
            settings = ra.SearchSettings(space=space, storage=tmp, experiment="ours",
                                         cpus_per_trial=1.0, gpus_per_trial=0.0, seed=0,
                                         max_concurrent=1)
            started = time.monotonic()
            grid = ra.run(settings, num_samples=args.trials)
            ours_wall = time.monotonic() - started
            firsts = ra.first_report_seconds(grid)
        finally:
            ra.shutdown()
    to_first = statistics.median(f["time_to_first_report"] for f in firsts)
    trainer = statistics.median(f["trainer_seconds"] for f in firsts)
    figures = {
        "trials": args.trials,
        "plain_seconds_per_trial": plain_wall / args.trials,
        "ours_seconds_per_trial": ours_wall / args.trials,
        "ours_time_to_first_report": to_first,
        "ours_trainer_seconds_to_first_report": trainer,
        "ours_fixed_overhead": to_first - trainer,
        "ratio_per_trial_vs_plain": (ours_wall / args.trials) / (plain_wall / args.trials),
        "target_overhead_seconds": 10.0,
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"plain Tune trial, wall per trial:        {figures['plain_seconds_per_trial']:6.2f} s")
    print(f"collatz trial, wall per trial:           {figures['ours_seconds_per_trial']:6.2f} s "
          f"({figures['ratio_per_trial_vs_plain']:.1f}x plain)")
    print(f"collatz trial, start to first report:    {to_first:6.2f} s (median)")
    print(f"  of which the trainer itself:           {trainer:6.2f} s")
    print(f"  fixed overhead (Ray Train, imports):   {figures['ours_fixed_overhead']:6.2f} s "
          f"(target < 10 s: {'met' if figures['ours_fixed_overhead'] < 10 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
