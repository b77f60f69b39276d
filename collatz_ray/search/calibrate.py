"""How fast this machine trains a search's trials: the plain trainer, run in this
process for a few epochs of the costliest config a space samples (no Ray). It is what
`--dry-run` extrapolates its time estimate from.

Importing this module is cheap; torch loads when a function needs it.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collatz_ray.errors import UsageError
from collatz_ray.search.spaces import SearchSpace
from collatz_ray.trainer.config import TrainConfig

#: How long the timed run aims to train. Long enough that the per-run costs (model,
#: evaluation, checkpoint) cancel out against a 2-epoch run, short enough that a dry run
#: stays under about 20 s even for the log's 4.6M-parameter model on a CPU.
CALIBRATION_SECONDS = 4.0
#: Epochs timed at most (small models run thousands of epochs a second).
MAX_CALIBRATION_EPOCHS = 5000
#: Rows of the throwaway evaluation set the timed runs evaluate on; an evaluation of
#: the search's own set is scaled from it by rows.
PROBE_ROWS = 1024

#: Settings whose larger values cost more per epoch, whose `True` does, whose `False` does.
_MORE_COSTS = ("lookahead", "batch_size", "max_bits", "mine_pool", "mine_count")
_ON_COSTS = ("use_t1", "use_t4", "use_t8", "mine_negatives")
_OFF_COSTS = ("linear", "k_only")


@dataclass(frozen=True)
class Calibration:
    """What one epoch and one evaluation of `config` took here."""

    config: TrainConfig
    epoch_s: float  # wall time: what this machine gives now
    epoch_cpu_s: float  # CPU time per thread: what a free core would give
    epochs: int  # epochs in the timed run
    eval_s: float  # one evaluation of eval_rows rows
    eval_rows: int
    device: str
    threads: int
    seconds: float  # spent calibrating
    load: float | None  # the 1-minute load average when done
    cpus: int


def _cost(name: str, value: Any) -> float:
    """Orders one setting's values by what they cost per epoch; 0 for settings that
    cost the same whatever their value (the first choice is then kept)."""
    if name == "layers":
        widths = list(value)
        return sum(a * b for a, b in zip(widths, widths[1:])) + 300 * (widths[0] if widths else 0)
    if name in _MORE_COSTS:
        return float(value or 0)
    if name in _ON_COSTS:
        return float(bool(value))
    if name in _OFF_COSTS:
        return float(not value)
    return 0.0


def costliest_config(space: SearchSpace) -> TrainConfig:
    """The trial config that costs the most per epoch among those the space can sample:
    per parameter, in sampling order (so `when` holds), the costliest choice or range
    end; the widest stack, the longest lookahead, the largest batch, T4/T8 on."""
    context = dict(space.fixed)
    params: dict[str, Any] = {}
    for p in space.parameters:
        if not p.active(context):
            continue
        if p.is_range:
            value = p.high if _cost(p.name, p.high) > _cost(p.name, p.low) else p.low
        else:
            value = max(p.choices, key=functools.partial(_cost, p.name))
        context[p.name] = value
        params[p.name] = list(value) if isinstance(value, tuple) else value
    try:
        return space.trial_config(params)
    except UsageError:  # a rule between two searched settings: fall back to the fixed ones
        return space.trial_config({})


def local_cpus() -> int:
    """CPUs an embedded Ray would count here: the machine's, or fewer when a container's
    CPU quota (cgroup) says so."""
    count = multiprocessing.cpu_count()
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return count


def local_resources() -> dict[str, float]:
    """This machine as an embedded Ray sees it: {"CPU": n, "GPU": m}."""
    import torch

    return {
        "CPU": float(local_cpus()),
        "GPU": float(torch.cuda.device_count() if torch.cuda.is_available() else 0),
    }


def calibrate(
    space: SearchSpace, *, threads: int, device: str, eval_rows: int, seconds: float | None = None
) -> Calibration:
    """Time the costliest config of `space`: a warm-up run (compiles, allocates), a
    2-epoch run and a longer one; an epoch costs the difference over the extra epochs,
    so the per-run costs (building the model, the final evaluation, the checkpoint)
    cancel out. The longer run grows until it trains about `seconds`."""
    import torch

    from collatz_ray.trainer.evalset_csv import write_evalset

    target = CALIBRATION_SECONDS if seconds is None else seconds
    started = time.monotonic()
    config = costliest_config(space)
    limit = max(4, min(space.budget.epochs, MAX_CALIBRATION_EPOCHS))
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="collatz-calibrate-") as tmp:
            probe = Path(tmp) / "probe.csv"
            write_evalset(probe, samples=PROBE_ROWS)
            run = _timed_runs(config.replace(eval_csv=str(probe), device=device), Path(tmp), threads=threads)
            epochs, epoch_s, epoch_cpu_s = _time_epochs(run, target=target, limit=limit, started=started)
            eval_s = _time_evaluation(config, probe, device=device, eval_rows=eval_rows)
    finally:
        torch.set_num_threads(saved_threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return Calibration(
        config=config,
        epoch_s=epoch_s,
        epoch_cpu_s=epoch_cpu_s,
        epochs=epochs,
        eval_s=eval_s,
        eval_rows=eval_rows,
        device=device,
        threads=threads,
        seconds=time.monotonic() - started,
        load=load,
        cpus=local_cpus(),
    )


def _timed_runs(config: TrainConfig, root: Path, *, threads: int) -> Callable[[int], tuple[float, float]]:
    """A function that trains `config` for a number of epochs (evaluated once, at the
    end), each time in a new run directory under `root`, and returns (wall seconds,
    CPU seconds per thread)."""
    from collatz_ray.trainer.loop import train

    names = (f"run{i}" for i in itertools.count())

    def run(epochs: int) -> tuple[float, float]:
        wall, cpu = time.monotonic(), time.process_time()
        train(config.replace(epochs=epochs, eval_interval=epochs), run_dir=root / next(names), verbose=False)
        return time.monotonic() - wall, (time.process_time() - cpu) / threads

    return run


def _time_epochs(
    run: Callable[[int], tuple[float, float]], *, target: float, limit: int, started: float
) -> tuple[int, float, float]:
    """(epochs of the longest run, wall and CPU seconds per epoch): a 2-epoch run gives a
    first guess (an overestimate: it holds the per-run costs), then runs grow until
    their extra epochs train about target/2, `limit` epochs are reached, or the
    calibration (begun at `started`) took 3 x target."""
    run(2)  # warm-up: compiles, allocates
    short = run(2)
    epochs = min(limit, max(6, 2 + int(target / 2 / max(short[0] / 2, 1e-5))))
    while True:
        took = run(epochs)
        epoch_s = _per_epoch(took[0], short[0], epochs)
        if took[0] - short[0] >= target / 2 or epochs >= limit or time.monotonic() - started > 3 * target:
            break
        epochs = min(limit, max(2 * epochs, 2 + int(target / max(epoch_s, 1e-5))))
    return epochs, epoch_s, _per_epoch(took[1], short[1], epochs)


def _per_epoch(long: float, short: float, epochs: int) -> float:
    """An epoch's cost: the longer run's extra time over its extra epochs (or, should
    the clock say it took no longer than 2 epochs, its time over all of them)."""
    return (long - short) / (epochs - 2) if long > short else long / epochs


def _time_evaluation(config: TrainConfig, probe: Path, *, device: str, eval_rows: int) -> float:
    """One evaluation of `config`'s model on a set of `eval_rows` rows, scaled from a
    warm one on the probe set."""
    import torch

    from collatz_ray.syracuse.arith import trajectory
    from collatz_ray.syracuse.features import FeatureSpec
    from collatz_ray.trainer.evalset_csv import load_evalset
    from collatz_ray.trainer.evaluation import evaluate
    from collatz_ray.trainer.model import build_model

    model = build_model(config).to(device)
    spec = FeatureSpec(config.lookahead, k_only=config.k_only, k_shifted=config.k_shifted)
    evalset = load_evalset(probe)
    evaluate(model, spec, test_seeds=config.test_seeds, evalset=evalset, device=torch.device(device))
    begin = time.monotonic()
    evaluate(model, spec, test_seeds=config.test_seeds, evalset=evalset, device=torch.device(device))
    # Population rows (n and T n) grow with the set; trajectory rows do not.
    steps = sum(len(trajectory(seed)) for seed in config.test_seeds)
    return (time.monotonic() - begin) * (2 * eval_rows + steps) / (2 * len(evalset) + steps)
