"""The speed benchmarks behind `python -m collatz_ray.bench`: how much faster the vectorised paths are than the plain
per-integer way of doing the same work, measured in one run on this machine.

The naive baselines live here, written with `features.reference_row` and the scalar
`arith` functions: one Python loop over integers, no tensors until the rows are built.
Before anything is timed, every benchmark checks that its naive and fast paths give the
same numbers on a sample (feature rows, batch weights, the loss, the evaluation metrics),
so a ratio never compares two different computations. The naive side may be timed on a
smaller sample than the fast side and scaled per item; the output says where.

    1. features at lookahead 100 for odd numbers of up to 128 bits (uniform, and the
       training distribution): numbers/s of `features.extract` (from Python ints) and of
       `features_of_limbs` (from ready limbs) against `reference_row`.
    2. one training epoch (batch 1024, layers 128,128,128, lookahead 100, T1 only): the
       trainer's chunked `BatchSampler.draw_epochs` plus the loss step, against the same
       step fed by per-integer sampling and `reference_row` of n and T n every epoch.
       Also the share of the fast epoch spent preparing data, and (for information) the
       naive epoch as the original script did it, with T^4 n and T^8 n rows as well.
    3. a full evaluation (5 test seeds + the canonical 50k CSV) at lookahead 100: first
       call of `evaluation.evaluate` (features computed) and a warm repeat, against
       per-integer rows of every trajectory value, CSV n and t1, then the same forward
       and metric arithmetic.
    4. the counterexample scan of `python -m collatz_ray.verify` at lookahead 100 over a
       run of consecutive odd n just above 2^31, with a small model (layers 32,32): one
       `verify.scan_chunk` (numbers, rows of n and T n, forward, counts per bit length,
       first counterexamples), against Python ints with `reference_row` of n and of
       T(n), the same batched forward and the same counts. The forward pass is common
       to both sides: with the log's 4.4M-parameter stack it dominates both, and the
       ratio would describe the model, not the scan.

Ratios are reported, not enforced: the exit status is 0 unless an equality check fails.
"""

from __future__ import annotations

import math
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from collatz_ray.syracuse import arith, features, limbs
from collatz_ray.syracuse.features import FeatureSpec, features_of_limbs, reference_row
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.data import (
    HARD_WEIGHT_DECAY,
    HARD_WEIGHT_GROWTH,
    RANDOM_WEIGHT_DECAY,
    RANDOM_WEIGHT_GROWTH,
    STREAM_TRAIN,
    Batch,
    BatchSampler,
    odd_walk,
)
from collatz_ray.trainer.evalset_csv import EvalSet, ensure_default_evalset, load_evalset
from collatz_ray.trainer.evaluation import (
    Population,
    Trajectories,
    clear_feature_caches,
    evaluate,
    population_features,
    population_metrics,
    predict,
    trajectory_features,
    trajectory_metrics,
)
from collatz_ray.trainer.loop import CHUNK_ROWS, chunk_end
from collatz_ray.trainer.loss import lyapunov_loss
from collatz_ray.trainer.model import LyapunovMLP, build_model
from collatz_ray.trainer.scan import scan_chunk

LOOKAHEAD = 100
LAYERS = (128, 128, 128)
BATCH = 1024
MAX_BITS = 128

TARGET_FEATURES = 50.0
TARGET_TRAINING = 10.0
TARGET_DATA_SHARE = 0.30
TARGET_EVALUATION = 10.0
TARGET_VERIFY = 30.0
#: The verify benchmark's small model and where its numbers start.
VERIFY_LAYERS = (32, 32)
VERIFY_START = 2**31 + 1

#: Feature rows must agree to float32 rounding (they are in fact bit-identical today).
ROW_ATOL = 1e-6


@dataclass(frozen=True)
class Sizes:
    features_fast: int  # numbers per fast call
    features_naive: int  # numbers the naive loop is timed on (scaled per number)
    train_epochs: int  # fast epochs per timed repeat (a multiple of the chunk's epochs)
    train_naive_epochs: int  # naive epochs timed (scaled per epoch)
    eval_rows: int | None  # CSV rows evaluated (None: all of them)
    repeats: int  # fast side: best of at least this many ...
    min_seconds: float  # ... and of as many more as fit in this time (short calls)
    verify_fast: int  # odd numbers one timed scan covers
    verify_naive: int  # odd numbers the naive scan is timed on (scaled per number)


FULL = Sizes(
    features_fast=65536,
    features_naive=3000,
    train_epochs=256,
    train_naive_epochs=4,
    eval_rows=None,
    repeats=3,
    min_seconds=1.0,
    verify_fast=1 << 20,
    verify_naive=20000,
)
QUICK = Sizes(
    features_fast=16384,
    features_naive=500,
    train_epochs=64,
    train_naive_epochs=1,
    eval_rows=10000,
    repeats=2,
    min_seconds=0.2,
    verify_fast=1 << 16,
    verify_naive=2000,
)


class CheckFailed(AssertionError):
    """Naive and fast paths disagree: the ratios would compare different work."""


@dataclass
class Report:
    machine: dict[str, Any]
    checks: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks[name] = {"passed": bool(ok), "detail": detail}
        if not ok:
            raise CheckFailed(f"equality check {name!r} failed: {detail}")

    def row(
        self,
        name: str,
        unit: str,
        naive: float | None,
        fast: float,
        ratio: float | None,
        target: str,
        met: bool | None,
    ) -> None:
        self.table.append(
            {
                "benchmark": name,
                "unit": unit,
                "naive": naive,
                "fast": fast,
                "ratio": ratio,
                "target": target,
                "met": met,
            }
        )


# -- timing helpers ----------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(
    fn: Callable[[], Any],
    *,
    repeats: int,
    device: torch.device,
    warmup: int = 1,
    min_seconds: float = 0.0,
    max_repeats: int = 30,
) -> float:
    """Best wall time of fn after `warmup` untimed calls: at least `repeats` calls, more
    (up to max_repeats) until they add up to min_seconds, so that short calls on a
    shared, noisy machine get enough tries to find a quiet moment."""
    for _ in range(warmup):
        fn()
        _sync(device)
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_seconds and len(times) < max_repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def machine_info(device: torch.device) -> dict[str, Any]:
    info = {
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "device": str(device),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# -- naive building blocks -----------------------------------------------------------------------


def naive_rows(values: Sequence[int], lookahead: int, offset: int = 0) -> list[list[float]]:
    """Feature rows of T^offset(n) for each n, one integer at a time."""
    if offset == 0:
        return [reference_row(v, lookahead) for v in values]
    return [reference_row(arith.syracuse_power(v, offset), lookahead) for v in values]


def uniform_odd(rng: random.Random, count: int, bits: int = MAX_BITS) -> list[int]:
    """Uniform odd integers below 2^bits."""
    return [rng.getrandbits(bits) | 1 for _ in range(count)]


def training_values(sampler: BatchSampler, count: int, first_epoch: int = 10**6) -> list[int]:
    """`count` numbers of the training distribution, drawn the trainer's way."""
    out: list[int] = []
    epoch = first_epoch
    while len(out) < count:
        drawn, _ = sampler._draw_values(
            epoch, sampler.config.batch_size, sampler.config.hard_ratio, STREAM_TRAIN
        )
        out.extend(limbs.to_ints(drawn))
        epoch += 1
    return out[:count]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double().cpu() - b.double().cpu()).abs().max()) if a.numel() else 0.0


# -- 1. features ----------------------------------------------------------------------------------


def bench_features(report: Report, sizes: Sizes, device: torch.device, sampler: BatchSampler) -> None:
    rng = random.Random(1234)
    spec = FeatureSpec(LOOKAHEAD)
    dists = {
        "uniform128": uniform_odd(rng, sizes.features_fast),
        "training": training_values(sampler, sizes.features_fast),
    }
    out: dict[str, Any] = {}
    for name, values in dists.items():
        sample = values[: sizes.features_naive]
        # Honesty first: the fast rows equal the per-integer rows on the naive sample.
        fast_rows = features.extract(sample, LOOKAHEAD, device=device)
        ref = torch.tensor(naive_rows(sample, LOOKAHEAD), dtype=torch.float32)
        diff = _max_diff(fast_rows, ref)
        k_equal = bool(torch.equal(fast_rows[:, 6:].cpu(), ref[:, 6:]))
        report.check(
            f"features_{name}",
            diff <= ROW_ATOL and k_equal,
            f"{len(sample)} rows, max |fast - naive| = {diff:.3g}, k columns {'equal' if k_equal else 'differ'}",
        )

        n_limbs = limbs.from_ints(values, device=device)
        t_naive = best_time(
            lambda: naive_rows(sample, LOOKAHEAD), repeats=sizes.repeats, device=device, warmup=0
        )
        t_extract = best_time(
            lambda: features.extract(values, LOOKAHEAD, device=device),
            repeats=sizes.repeats,
            device=device,
            min_seconds=sizes.min_seconds,
        )
        t_limbs = best_time(
            lambda: features_of_limbs(n_limbs, spec),
            repeats=sizes.repeats,
            device=device,
            min_seconds=sizes.min_seconds,
        )
        naive_rate = len(sample) / t_naive
        extract_rate = len(values) / t_extract
        limbs_rate = len(values) / t_limbs
        out[name] = {
            "naive_numbers_per_s": naive_rate,
            "naive_sample": len(sample),
            "extract_numbers_per_s": extract_rate,
            "limbs_numbers_per_s": limbs_rate,
            "fast_batch": len(values),
            "extract_ratio": extract_rate / naive_rate,
            "limbs_ratio": limbs_rate / naive_rate,
        }
        for label, rate in (("extract", extract_rate), ("features_of_limbs", limbs_rate)):
            ratio = rate / naive_rate
            report.row(
                f"features L={LOOKAHEAD} {name}: {label}",
                "numbers/s",
                naive_rate,
                rate,
                ratio,
                f">= {TARGET_FEATURES:g}x",
                ratio >= TARGET_FEATURES,
            )
    report.figures["features"] = out
    report.notes.append(
        f"features: fast timed on batches of {sizes.features_fast} numbers; naive timed on the "
        f"first {sizes.features_naive} of them (throughput per number). extract starts from "
        "Python ints like the naive loop; features_of_limbs from ready limbs."
    )


# -- 2. one training epoch ---------------------------------------------------------------------------


def _train_config(device: torch.device) -> TrainConfig:
    return TrainConfig(
        layers=LAYERS, lookahead=LOOKAHEAD, batch_size=BATCH, max_bits=MAX_BITS, device=device.type
    )


class NaiveSampler:
    """Training batches (docs/method.md) drawn one integer at a time with Python's `random`, the way the
    original script did (same distribution as `BatchSampler`, not the same draws)."""

    def __init__(self, config: TrainConfig, seed: int = 0) -> None:
        self.config = config
        self.rng = random.Random(seed)
        self.seeds = [s for s in arith.HARD_SEEDS if s not in set(config.test_seeds)]
        # Walks are cached once per seed: caching is not vectorisation.
        self.walks = {s: odd_walk(s) for s in self.seeds}

    def values(self) -> tuple[list[int], list[bool]]:
        c, rng = self.config, self.rng
        hard_count = int(c.batch_size * c.hard_ratio)
        values, is_hard = [], []
        for _ in range(hard_count):
            walk = self.walks[self.seeds[rng.randrange(len(self.seeds))]]
            values.append(walk[int(rng.random() * len(walk))])
            is_hard.append(True)
        for _ in range(c.batch_size - hard_count):
            b = rng.randint(2, c.max_bits - 4)
            n = rng.randint(1 << b, (1 << (b + 1)) - 1)
            values.append(n + 1 if n % 2 == 0 else n)
            is_hard.append(False)
        return values, is_hard


def naive_batch(
    values: Sequence[int],
    is_hard: Sequence[bool],
    config: TrainConfig,
    device: torch.device,
    offsets: Sequence[int],
    timings: dict[int | str, float] | None = None,
) -> Batch:
    """Rows of T^j(n) for each offset j (offset 0 first), weights, ln n and drift, per
    integer, as a Batch."""
    L = config.lookahead
    rows: dict[int, torch.Tensor] = {}
    drift_column: list[float] = []
    for j in offsets:  # each offset timed on its own (rows, then the tensor)
        start = time.perf_counter()
        lists = naive_rows(values, L, j)
        if j == 0:
            drift_column = [row[5] * 10 for row in lists]  # drift/10 is a column of n's row
        rows[j] = torch.tensor(lists, dtype=torch.float32, device=device)
        if timings is not None:
            timings[j] = timings.get(j, 0.0) + time.perf_counter() - start
    start = time.perf_counter()
    weight, ln_n = [], []
    for v, hard in zip(values, is_hard):
        grows = arith.syracuse(v) > v
        if hard:
            weight.append(HARD_WEIGHT_GROWTH if grows else HARD_WEIGHT_DECAY)
        else:
            weight.append(RANDOM_WEIGHT_GROWTH if grows else RANDOM_WEIGHT_DECAY)
        ln_n.append(math.log(v))
    batch = Batch(
        rows=rows,
        ln_n=torch.tensor(ln_n, dtype=torch.float32, device=device),
        drift=torch.tensor(drift_column, dtype=torch.float32, device=device),
        weight=torch.tensor(weight, dtype=torch.float32, device=device),
        is_hard=torch.tensor(is_hard, dtype=torch.bool, device=device),
        values=torch.empty((0, 1), dtype=torch.int64),
    )
    if timings is not None:
        timings["rest"] = timings.get("rest", 0.0) + time.perf_counter() - start
    return batch


class Stepper:
    """The trainer's per-epoch model work: loss, backward, AdamW, plateau scheduler."""

    def __init__(self, config: TrainConfig, device: torch.device) -> None:
        torch.manual_seed(0)
        self.config = config
        self.model = build_model(config).to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience
        )
        self.model.train()

    def __call__(self, batch: Batch, epoch: int) -> float:
        loss = lyapunov_loss(self.model, batch, epoch, self.config)
        value = float(loss.detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step(value)
        return value


def fast_epochs(
    sampler: BatchSampler, stepper: Stepper, first: int, count: int, device: torch.device
) -> tuple[float, float]:
    """`count` epochs the way `training.train` runs them: (data seconds, step seconds)."""
    config = sampler.config
    data = step = 0.0
    queue: list[Batch] = []
    for epoch in range(first, first + count):
        if not queue:
            start = time.perf_counter()
            queue = sampler.draw_epochs(range(epoch, min(first + count, chunk_end(epoch, config))))
            _sync(device)
            data += time.perf_counter() - start
        start = time.perf_counter()
        stepper(queue.pop(0), epoch)
        _sync(device)
        step += time.perf_counter() - start
    return data, step


def bench_training(report: Report, sizes: Sizes, device: torch.device) -> None:
    config = _train_config(device)
    sampler = BatchSampler(config, device=device)
    naive = _check_training_batch(report, config, sampler, device)
    fast = _time_fast_epochs(config, sampler, sizes, device)
    naive_times = _time_naive_epochs(config, sizes, device, warm_batch=naive)
    _report_training(report, sizes, fast, naive_times, offsets=(0,) + sampler.offsets)


#: Offsets of the rows the original script built every epoch: n, T n, T^4 n, T^8 n.
ORIGINAL_OFFSETS = (0, 1, 4, 8)


def _check_training_batch(
    report: Report, config: TrainConfig, sampler: BatchSampler, device: torch.device
) -> Batch:
    """Honesty first: on one of the trainer's own batches, per-integer rows, weights,
    ln n, drift and the loss equal the fast ones (and T^4 / T^8 rows of the
    original-style naive path equal the vectorised offsets 4 and 8). Returns the naive
    batch."""
    offsets = (0,) + sampler.offsets  # (0, 1): T1 only
    fast = sampler.draw_epochs([7])[0]
    values = limbs.to_ints(fast.values)
    is_hard = fast.is_hard.cpu().tolist()
    naive = naive_batch(values, is_hard, config, device, offsets=ORIGINAL_OFFSETS)
    diffs = {j: _max_diff(fast.rows[j], naive.rows[j]) for j in offsets}
    extra = features_of_limbs(fast.values, sampler.spec, offsets=(4, 8)).rows
    diffs.update({j: _max_diff(extra[j], naive.rows[j]) for j in (4, 8)})
    weight_equal = bool(torch.equal(fast.weight.cpu(), naive.weight.cpu()))
    ln_diff = _max_diff(fast.ln_n, naive.ln_n)
    drift_diff = _max_diff(fast.drift, naive.drift)
    probe = Stepper(config, device)
    with torch.no_grad():
        loss_fast = float(lyapunov_loss(probe.model, fast, 7, config))
        loss_naive = float(lyapunov_loss(probe.model, naive, 7, config))
    ok = (
        max(diffs.values()) <= ROW_ATOL
        and weight_equal
        and ln_diff <= 1e-5
        and drift_diff <= 1e-5
        and math.isclose(loss_fast, loss_naive, rel_tol=1e-5, abs_tol=1e-7)
    )
    report.check(
        "training_batch",
        ok,
        f"{len(values)} rows: max row diff per offset "
        + ", ".join(f"T^{j} {d:.3g}" if j else f"n {d:.3g}" for j, d in diffs.items())
        + f"; weights {'equal' if weight_equal else 'differ'}, |ln n| diff {ln_diff:.3g}, "
        f"|drift| diff {drift_diff:.3g}, loss {loss_fast:.7g} vs {loss_naive:.7g}",
    )
    return naive


@dataclass(frozen=True)
class _FastEpochs:
    """The best of the timed runs of fast epochs: seconds in all, preparing data and
    stepping, over `epochs` epochs drawn in chunks of `chunk`."""

    total: float
    data: float
    step: float
    epochs: int
    chunk: int


def _time_fast_epochs(
    config: TrainConfig, sampler: BatchSampler, sizes: Sizes, device: torch.device
) -> _FastEpochs:
    """Chunks of CHUNK_ROWS rows as the trainer draws them. One untimed chunk warms up."""
    chunk = max(1, CHUNK_ROWS // config.batch_size)
    stepper = Stepper(config, device)
    fast_epochs(sampler, stepper, 0, min(chunk, 8), device)
    runs = []
    first = chunk  # aligned with the trainer's chunks from here on
    for _ in range(sizes.repeats):
        data, step = fast_epochs(sampler, stepper, first, sizes.train_epochs, device)
        first += sizes.train_epochs
        runs.append((data + step, data, step))
    total, data, step = min(runs)
    return _FastEpochs(total, data, step, sizes.train_epochs, chunk)


@dataclass(frozen=True)
class _NaiveEpochs:
    """Seconds the naive epochs took in all: drawing the integers, each offset's rows
    and the rest of the batch (`parts`, keyed by offset and "rest"), and stepping."""

    sample: float
    parts: dict[int | str, float]
    step: float
    epochs: int


def _time_naive_epochs(
    config: TrainConfig, sizes: Sizes, device: torch.device, *, warm_batch: Batch
) -> _NaiveEpochs:
    """The same step, fed by per-integer sampling and rows every epoch."""
    naive_sampler = NaiveSampler(config)
    nstep = Stepper(config, device)
    nstep(warm_batch, 0)  # untimed warm-up step (optimizer state, allocator)
    parts: dict[int | str, float] = {}
    sample_time = naive_step = 0.0
    for epoch in range(sizes.train_naive_epochs):
        start = time.perf_counter()
        vals, hard = naive_sampler.values()
        sample_time += time.perf_counter() - start
        batch = naive_batch(vals, hard, config, device, offsets=ORIGINAL_OFFSETS, timings=parts)
        start = time.perf_counter()
        nstep(batch, epoch)
        _sync(device)
        naive_step += time.perf_counter() - start
    return _NaiveEpochs(sample_time, parts, naive_step, sizes.train_naive_epochs)


def _report_training(
    report: Report, sizes: Sizes, fast: _FastEpochs, naive: _NaiveEpochs, *, offsets: tuple[int, ...]
) -> None:
    """The training figures, table rows and note, from both sides' times."""
    fast_eps = fast.epochs / fast.total
    share = fast.data / fast.total
    e = naive.epochs
    # The honest naive epoch computes what the loss uses (rows of n and T n); the
    # original script also built T^4 n and T^8 n rows every epoch: shown for information.
    naive_data = (naive.sample + naive.parts["rest"] + sum(naive.parts[j] for j in offsets)) / e
    naive_data_all = (naive.sample + naive.parts["rest"] + sum(naive.parts[j] for j in ORIGINAL_OFFSETS)) / e
    # The step is the same code on both sides; between Python loops it runs with cold
    # caches and often measures slower. The lower of the two figures keeps the ratio
    # conservative.
    step_used = min(naive.step / e, fast.step / fast.epochs)
    naive_eps = 1.0 / (naive_data + step_used)
    naive_eps_all = 1.0 / (naive_data_all + step_used)
    ratio = fast_eps / naive_eps
    report.figures["training"] = {
        "fast_epochs_per_s": fast_eps,
        "fast_epochs_timed": fast.epochs,
        "fast_data_s_per_epoch": fast.data / fast.epochs,
        "fast_step_s_per_epoch": fast.step / fast.epochs,
        "fast_data_share": share,
        "naive_epochs_per_s": naive_eps,
        "naive_epochs_timed": e,
        "naive_data_s_per_epoch": naive_data,
        "naive_step_s_per_epoch": naive.step / e,
        "naive_step_s_used": step_used,
        "ratio": ratio,
        "naive_all_offsets_epochs_per_s": naive_eps_all,
        "ratio_all_offsets": fast_eps / naive_eps_all,
    }
    report.row(
        "train epoch (n, T n rows)",
        "epochs/s",
        naive_eps,
        fast_eps,
        ratio,
        f">= {TARGET_TRAINING:g}x",
        ratio >= TARGET_TRAINING,
    )
    report.row(
        "train epoch, naive as original (n,T,T4,T8)",
        "epochs/s",
        naive_eps_all,
        fast_eps,
        fast_eps / naive_eps_all,
        "(info)",
        None,
    )
    report.row(
        "fast epoch: data-prep share",
        "share",
        None,
        share,
        None,
        f"<= {TARGET_DATA_SHARE:.0%}",
        share <= TARGET_DATA_SHARE,
    )
    report.notes.append(
        f"training: batch {BATCH}, layers {','.join(map(str, LAYERS))}, L={LOOKAHEAD}, T1 only; fast = "
        f"best of {sizes.repeats} runs of {fast.epochs} epochs drawn in chunks of {fast.chunk} epochs "
        f"(data {fast.data / fast.epochs * 1e3:.2f} ms + step {fast.step / fast.epochs * 1e3:.2f} ms "
        f"per epoch); naive timed over {e} epoch(s): data {naive_data * 1e3:.0f} ms per epoch "
        f"({naive_data_all * 1e3:.0f} ms with T^4/T^8 rows), step measured {naive.step / e * 1e3:.2f} ms, "
        f"counted as {step_used * 1e3:.2f} ms (the lower of the two sides' step times)."
    )


# -- 3. evaluation ------------------------------------------------------------------------------------


def naive_trajectory_features(seeds: tuple[int, ...], spec: FeatureSpec, device: str) -> Trajectories:
    """evaluation.trajectory_features, one integer at a time and without a cache."""
    values = tuple(tuple(arith.trajectory(s)) for s in seeds)
    rows = [
        reference_row(v, spec.lookahead, k_only=spec.k_only, k_shifted=spec.k_shifted)
        for traj in values
        for v in traj
    ]
    return Trajectories(
        seeds=seeds, values=values, features=torch.tensor(rows, dtype=torch.float32, device=device)
    )


def naive_population_features(evalset: EvalSet, spec: FeatureSpec, device: str) -> Population:
    """evaluation.population_features, one integer at a time: rows of every CSV n and t1."""

    def rows(values: Sequence[int]) -> torch.Tensor:
        return torch.tensor(
            [reference_row(v, spec.lookahead, k_only=spec.k_only, k_shifted=spec.k_shifted) for v in values],
            dtype=torch.float32,
            device=device,
        )

    return Population(
        rows_n=rows(evalset.n),
        rows_t1=rows(evalset.t1),
        is_growth=np.asarray(evalset.is_growth, dtype=bool),
        weight=np.asarray(evalset.w_expansion, dtype=np.float64),
    )


def naive_evaluate(
    model: LyapunovMLP, spec: FeatureSpec, seeds: Sequence[int], evalset: EvalSet, device: torch.device
) -> dict[str, Any]:
    """Per-integer rows of every trajectory value, CSV n and t1; then the same forward
    and metric arithmetic as `evaluation.evaluate`, so only the features differ."""
    return {
        **trajectory_metrics(model, naive_trajectory_features(tuple(seeds), spec, str(device))),
        **population_metrics(model, naive_population_features(evalset, spec, str(device))),
    }


def _metrics_equal(a: dict[str, Any], b: dict[str, Any]) -> tuple[bool, str]:
    if set(a) != set(b):
        return False, f"keys differ: {sorted(set(a) ^ set(b))[:5]}"
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, float) and isinstance(y, float):
            if not math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9):
                return False, f"{key}: {x!r} vs {y!r}"
        elif x != y:
            return False, f"{key}: {x!r} vs {y!r}"
    return True, f"{len(a)} metrics equal"


def bench_evaluation(report: Report, sizes: Sizes, device: torch.device) -> None:
    full = load_evalset(ensure_default_evalset())
    if sizes.eval_rows is not None and sizes.eval_rows < len(full):
        m = sizes.eval_rows
        evalset = EvalSet(full.path, full.n[:m], full.t1[:m], full.is_growth[:m], full.w_expansion[:m])
    else:
        evalset = full
    spec = FeatureSpec(LOOKAHEAD)
    torch.manual_seed(0)
    model = LyapunovMLP(spec.dim, LAYERS).to(device)
    seeds = arith.DEFAULT_TEST_SEEDS

    def fast_cold() -> dict[str, Any]:
        clear_feature_caches()
        return evaluate(model, spec, test_seeds=seeds, evalset=evalset, device=device)

    def fast_warm() -> dict[str, Any]:
        return evaluate(model, spec, test_seeds=seeds, evalset=evalset, device=device)

    fast_metrics = fast_cold()  # also the warm-up
    start = time.perf_counter()
    naive_metrics = naive_evaluate(model, spec, seeds, evalset, device)
    t_naive = time.perf_counter() - start
    # Feature rows first (the metrics share their code), then every metric.
    sample = min(len(evalset), 2000)
    part = EvalSet(
        evalset.path,
        evalset.n[:sample],
        evalset.t1[:sample],
        evalset.is_growth[:sample],
        evalset.w_expansion[:sample],
    )
    fast_pop = population_features(evalset, spec, str(device))
    naive_pop = naive_population_features(part, spec, str(device))
    fast_traj = trajectory_features(tuple(seeds), spec, str(device))
    naive_traj = naive_trajectory_features(tuple(seeds), spec, str(device))
    row_diff = max(
        _max_diff(fast_pop.rows_n[:sample], naive_pop.rows_n),
        _max_diff(fast_pop.rows_t1[:sample], naive_pop.rows_t1),
        _max_diff(fast_traj.features, naive_traj.features),
    )
    ok, detail = _metrics_equal(fast_metrics, naive_metrics)
    report.check(
        "evaluation_metrics",
        ok and row_diff <= ROW_ATOL,
        f"{len(evalset)} CSV rows + {len(seeds)} trajectories: {detail}; max row diff "
        f"{row_diff:.3g} (all trajectory rows, first {sample} CSV n and t1 rows)",
    )

    t_cold = best_time(
        fast_cold, repeats=sizes.repeats, device=device, warmup=0, min_seconds=sizes.min_seconds
    )
    fast_warm()
    t_warm = best_time(
        fast_warm, repeats=sizes.repeats, device=device, warmup=0, min_seconds=sizes.min_seconds
    )
    clear_feature_caches()
    report.figures["evaluation"] = {
        "csv_rows": len(evalset),
        "naive_s": t_naive,
        "fast_cold_s": t_cold,
        "fast_warm_s": t_warm,
        "ratio": t_naive / t_cold,
        "ratio_warm": t_naive / t_warm,
    }
    # Seconds per evaluation, shown as evaluations/s so that bigger is better everywhere.
    report.row(
        f"evaluation ({len(evalset)} rows): first call",
        "evals/s",
        1 / t_naive,
        1 / t_cold,
        t_naive / t_cold,
        f">= {TARGET_EVALUATION:g}x",
        t_naive / t_cold >= TARGET_EVALUATION,
    )
    report.row(
        "evaluation: warm repeat (cached features)",
        "evals/s",
        1 / t_naive,
        1 / t_warm,
        t_naive / t_warm,
        "(info)",
        None,
    )
    report.notes.append(
        f"evaluation: naive {t_naive:.2f} s (timed once, the whole set), fast first call "
        f"{t_cold:.3f} s (caches cleared before each call), warm {t_warm:.3f} s; fast sides "
        f"are the best of at least {sizes.repeats} calls (more for short calls, up to {sizes.min_seconds:g} s)."
        + ("" if evalset is full else f" --quick uses the CSV's first {len(evalset)} rows.")
    )


# -- 4. the counterexample scan --------------------------------------------------------------------


def naive_scan(
    model: LyapunovMLP, lookahead: int, values: Sequence[int], device: torch.device
) -> tuple[np.ndarray, np.ndarray, dict[int, list[int]]]:
    """verify.scan_chunk one integer at a time: rows of n and of T(n) from Python ints,
    then the same batched forward. (margins, violation mask, bits -> [numbers, violations])."""
    rows_n = torch.tensor([reference_row(n, lookahead) for n in values], dtype=torch.float32, device=device)
    rows_t = torch.tensor(
        [reference_row(arith.syracuse(n), lookahead) for n in values], dtype=torch.float32, device=device
    )
    v_n, v_t = predict(model, rows_n), predict(model, rows_t)
    with np.errstate(invalid="ignore"):
        margin = v_n - v_t
        bad = ~(margin > 0) | ~np.isfinite(v_n) | ~np.isfinite(v_t)
    buckets: dict[int, list[int]] = {}
    for n, b in zip(values, bad.tolist()):
        bucket = buckets.setdefault(n.bit_length(), [0, 0])
        bucket[0] += 1
        bucket[1] += b
    return margin, bad, buckets


def bench_verify(report: Report, sizes: Sizes, device: torch.device) -> None:
    spec = FeatureSpec(LOOKAHEAD)
    torch.manual_seed(0)
    model = LyapunovMLP(spec.dim, VERIFY_LAYERS).to(device)
    chunk = ("range", VERIFY_START, sizes.verify_fast)
    sample = [VERIFY_START + 2 * i for i in range(sizes.verify_naive)]

    # Honesty first: on the naive sample, the same violations, counts and margins.
    fast = scan_chunk(
        model, spec, ("range", VERIFY_START, len(sample)), index=0, seed=0, keep=len(sample), device=device
    )
    margin, bad, buckets = naive_scan(model, LOOKAHEAD, sample, device)
    fast_margin = np.array([e["margin"] for e in fast["examples"]], dtype=np.float64)
    same = (
        fast["violations"] == int(bad.sum())
        and fast["buckets"] == buckets
        and [int(e["n"]) for e in fast["examples"]] == [n for n, b in zip(sample, bad) if b]
        and np.allclose(fast_margin, margin[bad], rtol=0, atol=1e-6)
    )
    report.check(
        "verify_scan",
        same,
        f"{len(sample)} odd n from {VERIFY_START}: {fast['violations']} vs {int(bad.sum())} "
        f"violations, buckets {'equal' if fast['buckets'] == buckets else 'differ'}",
    )

    t_fast = best_time(
        lambda: scan_chunk(model, spec, chunk, index=0, seed=0, keep=10, device=device),
        repeats=sizes.repeats,
        device=device,
        min_seconds=sizes.min_seconds,
    )
    t_naive = best_time(
        lambda: naive_scan(model, LOOKAHEAD, sample, device), repeats=1, device=device, warmup=0
    )
    fast_rate, naive_rate = sizes.verify_fast / t_fast, len(sample) / t_naive
    ratio = fast_rate / naive_rate
    report.figures["verify"] = {
        "fast_numbers_per_s": fast_rate,
        "fast_numbers": sizes.verify_fast,
        "naive_numbers_per_s": naive_rate,
        "naive_numbers": len(sample),
        "ratio": ratio,
        "layers": list(VERIFY_LAYERS),
        "lookahead": LOOKAHEAD,
        "first_n": VERIFY_START,
        "projected_hours_all_odd_below_2_32": (2**31 - 1) / fast_rate / 3600,
    }
    report.row(
        f"verify scan L={LOOKAHEAD}, layers {','.join(map(str, VERIFY_LAYERS))}",
        "numbers/s",
        naive_rate,
        fast_rate,
        ratio,
        f">= {TARGET_VERIFY:g}x",
        ratio >= TARGET_VERIFY,
    )
    report.notes.append(
        f"verify: {sizes.verify_fast} consecutive odd n from 2^31+1 in one scan_chunk (best of at least "
        f"{sizes.repeats}), naive timed once on the first {len(sample)}. At {fast_rate:,.0f} n/s on this "
        f"machine every odd n < 2^32 takes {(2**31 - 1) / fast_rate / 3600:.1f} h with this model "
        "(a larger model adds its forward passes to both sides)."
    )


# -- output ----------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "share":
        return f"{value:.1%}"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def render(report: Report) -> str:
    m = report.machine
    lines = [
        f"machine: {m['cpu_count']} CPUs ({m['affinity_cpus']} usable), torch {m['torch']} "
        f"({m['torch_threads']} threads), device {m['device']}"
        + (f" [{m['gpu']}]" if "gpu" in m else "")
        + f", python {m['python']}, load average {', '.join(f'{x:.2f}' for x in m['load_average'] or [])}"
    ]
    header = ("benchmark", "unit", "naive", "fast", "ratio", "target", "met?")
    body = [
        (
            r["benchmark"],
            r["unit"],
            _fmt(r["naive"], r["unit"]),
            _fmt(r["fast"], r["unit"]),
            "-" if r["ratio"] is None else f"{r['ratio']:.1f}x",
            r["target"],
            "-" if r["met"] is None else ("yes" if r["met"] else "NO"),
        )
        for r in report.table
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    fmt = " | ".join(f"{{:<{w}}}" if i in (0, 1, 5) else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines += ["", fmt.format(*header), "-+-".join("-" * w for w in widths)]
    lines += [fmt.format(*row) for row in body]
    lines += ["", "equality checks (naive == fast before timing):"]
    lines += [
        f"  {name}: {'ok' if c['passed'] else 'FAILED'} ({c['detail']})" for name, c in report.checks.items()
    ]
    lines += ["", "notes:"] + [f"  {n}" for n in report.notes]
    return "\n".join(lines)


def to_json(report: Report) -> dict[str, Any]:
    f = report.figures
    return {
        "machine": report.machine,
        "checks_passed": all(c["passed"] for c in report.checks.values()) and bool(report.checks),
        "checks": report.checks,
        "ratios": {
            "features": f["features"]["uniform128"]["extract_ratio"],
            "training": f["training"]["ratio"],
            "evaluation": f["evaluation"]["ratio"],
            "verify": f["verify"]["ratio"],
        },
        "data_share": f["training"]["fast_data_share"],
        "targets": {
            "features": TARGET_FEATURES,
            "training": TARGET_TRAINING,
            "data_share_max": TARGET_DATA_SHARE,
            "evaluation": TARGET_EVALUATION,
            "verify": TARGET_VERIFY,
        },
        "table": report.table,
        "figures": f,
        "notes": report.notes,
    }


def set_threads(count: int) -> None:
    """torch.set_num_threads(count), made to stick.

    The first compiled (numba, OpenMP layer) k-sequence call resets OpenMP's thread
    count, and with it torch's: make that call now, then set the count again."""
    torch.set_num_threads(count)
    limbs.k_sequences(limbs.from_ints([27]), 1)
    torch.set_num_threads(count)


BENCHMARKS = ("features", "training", "evaluation", "verify")


def run_benchmarks(
    *,
    quick: bool,
    device: torch.device,
    only: Sequence[str] = BENCHMARKS,
    say: Callable[[str], None] = lambda _line: None,
) -> Report:
    """Run the chosen benchmarks; raises CheckFailed if a naive and a fast path disagree."""
    sizes = QUICK if quick else FULL
    report = Report(machine=machine_info(device))
    steps = {
        "features": lambda: bench_features(
            report, sizes, device, BatchSampler(_train_config(device), device=device)
        ),
        "training": lambda: bench_training(report, sizes, device),
        "evaluation": lambda: bench_evaluation(report, sizes, device),
        "verify": lambda: bench_verify(report, sizes, device),
    }
    wall: dict[str, float] = {}
    for i, name in enumerate(BENCHMARKS, 1):
        if name not in only:
            continue
        say(f"benchmark {i}/{len(BENCHMARKS)}: {name} ...")
        start = time.perf_counter()
        steps[name]()
        wall[name] = time.perf_counter() - start
    report.machine["torch_threads_end"] = torch.get_num_threads()
    report.machine["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    report.figures["benchmark_wall_s"] = wall
    report.notes.append(
        "wall time per benchmark: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in wall.items())
        + ". Load average at the end: "
        + ", ".join(f"{x:.2f}" for x in report.machine["load_average_end"] or [])
        + " (a busy machine slows the fast side most: it uses every thread)."
    )
    return report


def partial_json(report: Report) -> dict[str, Any]:
    """The JSON of a run of some benchmarks only: no overall ratios."""
    return {
        "machine": report.machine,
        "checks_passed": all(c["passed"] for c in report.checks.values()),
        "checks": report.checks,
        "table": report.table,
        "figures": report.figures,
    }
