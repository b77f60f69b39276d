"""The fixed cost of a search trial on this machine, against a plain Tune trial.

Both kinds run one at a time on one embedded local Ray, in the same run:
  * plain: a Tune function trial of 1 CPU that reports at once (the floor any trial pays);
  * ours:  a collatz trial of 1 CPU, 10 epochs of an 8-wide model with a report every
           2 epochs (5 reports) on a 500-row evaluation set, as a search runs it.
For each kind: every trial's wall time as the driver sees it (best and median), and the
CPU time the whole machine spent per trial (/proc/stat, every process). Then the same
training in a fresh Python process without Ray (interpreter, torch import, 10 epochs),
so that what Ray adds beyond a plain trial is ours - plain - that. For ours also:
the time to the first report and the trainer's own share of it, and the median time a
report costs beyond the training between two reports. The load average is printed with
them: figures from a busy machine are not comparable with a quiet one's.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: The issue's targets: a collatz trial within 2x a plain one, a report within 0.1 s.
TARGET_RATIO = 2.0
TARGET_REPORT_S = 0.1

SPACE = """\
description: overhead probe, 10 epochs of an 8-wide model, a report every 2
budget: {epochs: 10, eval_interval: 2, grace_epochs: 10, reduction_factor: 2, num_samples: %d}
fixed: {layers: [8], batch_size: 64}
parameters:
  lookahead: {values: [5, 10]}
"""


#: The collatz trial's own work in a fresh process, without Ray: what a trial process
#: does besides talking to Tune (start Python, import torch and the trainer, train).
TRAINER_ALONE = """\
import sys, tempfile
from pathlib import Path
import torch
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.loop import train
torch.set_num_threads(1)
with tempfile.TemporaryDirectory() as tmp:
    config = TrainConfig(layers=(8,), batch_size=64, lookahead=5, epochs=10, eval_interval=2,
                         device="cpu", eval_csv=sys.argv[1])
    train(config, run_dir=Path(tmp) / "run", verbose=False)
"""


def trainer_alone_seconds(eval_csv: str, runs: int) -> list[float]:
    """Wall seconds of the trial's training in a fresh Python process without Ray."""
    walls = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", TRAINER_ALONE, eval_csv], check=True, timeout=600)
        walls.append(time.monotonic() - started)
    return walls


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent outside idle since boot (None: no /proc)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _timed(work: Callable[[], T]) -> tuple[T, float, float | None]:
    """(work(), wall seconds, busy CPU seconds of the machine meanwhile)."""
    cpu, started = busy_cpu_seconds(), time.monotonic()
    value = work()
    wall, cpu_after = time.monotonic() - started, busy_cpu_seconds()
    return value, wall, (None if cpu is None or cpu_after is None else cpu_after - cpu)


def measure(trials: int) -> dict[str, Any]:
    """Run `trials` plain and `trials` collatz trials, one at a time, on an embedded Ray."""
    from collatz_ray.search.ray import cluster, probe, tuner
    from collatz_ray.search.settings import SearchSettings
    from collatz_ray.search.spaces import load_space
    from collatz_ray.trainer.evalset_csv import write_evalset

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="collatz-bench-") as tmp:
        space_file = Path(tmp) / "probe.yaml"
        space_file.write_text(SPACE % trials)
        space = load_space(space_file)
        # A small evaluation set: the trial's evaluations are training work, not machinery.
        eval_csv = str(Path(tmp) / "eval_500.csv")
        write_evalset(Path(eval_csv), samples=500, seed=1, max_bits=64)
        cluster.connect(None)
        try:
            plain_walls, plain_total, plain_cpu = _timed(
                lambda: probe.run_plain_trials(storage=tmp, experiment="plain", num_samples=trials, cpus=1.0)
            )
            settings = SearchSettings(
                space=space,
                storage=tmp,
                experiment="ours",
                cpus_per_trial=1.0,
                gpus_per_trial=0.0,
                seed=0,
                max_concurrent=1,
                eval_csv=eval_csv,
            )
            clock = probe.TrialClock()
            grid, ours_total, ours_cpu = _timed(
                lambda: tuner.run(settings, num_samples=trials, callbacks=[clock], verbose=0)
            )
            figures = probe.report_figures(grid)
        finally:
            cluster.shutdown()
        alone = trainer_alone_seconds(eval_csv, trials)
    per_cpu = {
        k: (None if cpu is None else cpu / trials) for k, cpu in (("plain", plain_cpu), ("ours", ours_cpu))
    }
    return {
        "trials": trials,
        "load_average_1min": load,
        "plain_wall_best": min(plain_walls),
        "plain_wall_median": statistics.median(plain_walls),
        "ours_wall_best": min(clock.walls),
        "ours_wall_median": statistics.median(clock.walls),
        "ratio_median": statistics.median(clock.walls) / statistics.median(plain_walls),
        "ratio_best": min(clock.walls) / min(plain_walls),
        "trainer_alone_best": min(alone),
        "trainer_alone_median": statistics.median(alone),
        "ray_beyond_plain_and_trainer_median": (
            statistics.median(clock.walls) - statistics.median(plain_walls) - statistics.median(alone)
        ),
        "plain_search_seconds_per_trial": plain_total / trials,
        "ours_search_seconds_per_trial": ours_total / trials,
        "plain_cpu_seconds_per_trial": per_cpu["plain"],
        "ours_cpu_seconds_per_trial": per_cpu["ours"],
        "ours_time_to_first_report": statistics.median(f["time_to_first_report"] for f in figures),
        "ours_trainer_seconds_to_first_report": statistics.median(f["trainer_seconds"] for f in figures),
        "ours_report_overhead_median": statistics.median(f["report_overhead"] for f in figures),
        "target_ratio": TARGET_RATIO,
        "target_report_seconds": TARGET_REPORT_S,
    }


def render(figures: dict[str, Any]) -> str:
    def cpu(key: str) -> str:
        return "n/a" if figures[key] is None else f"{figures[key]:.2f} s"

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    ratio, report = figures["ratio_median"], figures["ours_report_overhead_median"]
    return "\n".join(
        [
            f"{figures['trials']} trials of each kind, one at a time; load average {figures['load_average_1min']:.2f}",
            f"plain Tune trial, wall per trial:     best {figures['plain_wall_best']:6.2f} s, "
            f"median {figures['plain_wall_median']:6.2f} s; machine CPU {cpu('plain_cpu_seconds_per_trial')} per trial",
            f"collatz trial, wall per trial:        best {figures['ours_wall_best']:6.2f} s, "
            f"median {figures['ours_wall_median']:6.2f} s; machine CPU {cpu('ours_cpu_seconds_per_trial')} per trial",
            f"  ratio to plain:                     {ratio:.2f}x median, {figures['ratio_best']:.2f}x best "
            f"(target <= {TARGET_RATIO:g}x: {verdict(ratio <= TARGET_RATIO)})",
            f"  the same training without Ray:      best {figures['trainer_alone_best']:6.2f} s, median "
            f"{figures['trainer_alone_median']:6.2f} s (a fresh process: import torch, train, evaluate)",
            f"  left for Ray beyond a plain trial:  {figures['ray_beyond_plain_and_trainer_median']:6.2f} s per trial "
            "(median: collatz - plain - training alone)",
            f"  start to first report:              {figures['ours_time_to_first_report']:6.2f} s "
            f"(the trainer itself {figures['ours_trainer_seconds_to_first_report']:.2f} s; median)",
            f"  per report beyond training:         {report:6.3f} s median "
            f"(target <= {TARGET_REPORT_S:g} s: {verdict(report <= TARGET_REPORT_S)})",
        ]
    )
