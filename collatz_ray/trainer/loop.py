"""The training loop, top to bottom (docs/method.md). It knows nothing of Ray.

A run directory holds config.yaml (the resolved TrainConfig), metrics.jsonl and
checkpoints/ (see checkpoints.py), and model.pth (the final weights, seed format). One
process at a time works in it (its lock), and a new run never lands on an old one
unless told to replace it (`overwrite`).

Whoever drives the loop (the CLI, or the Ray adapter) passes `on_evaluation`, which is
called with the metrics and the checkpoint directory after every evaluation, and may pass
`on_mined`, called after each mining round with the kept numbers that violate (the Ray
adapter banks them, see bank.py); those are the only hooks, so the trainer stays free of
any tuner's API.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from collatz_ray._atomic import write_atomically
from collatz_ray._progress import ProgressBar
from collatz_ray.errors import UsageError
from collatz_ray.syracuse import limbs
from collatz_ray.syracuse.features import FeatureSpec
from collatz_ray.trainer.bank import ranked_numbers
from collatz_ray.trainer.checkpoints import (
    METRICS_FILE,
    clear_run,
    holds_run,
    latest_checkpoint,
    load_checkpoint,
    remove_partial_checkpoints,
    restoring,
    run_lock,
    save_checkpoint,
    seed_format,
    torch_bytes,
    truncate_metrics,
)
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.data import Batch, BatchSampler
from collatz_ray.trainer.evalset_csv import EvalSet, ensure_default_evalset, file_sha256, load_evalset
from collatz_ray.trainer.evaluation import evaluate
from collatz_ray.trainer.heldout import heldout_metrics
from collatz_ray.trainer.loss import lyapunov_loss, values_at_offsets
from collatz_ray.trainer.model import LyapunovMLP, build_model
from collatz_ray.trainer.text import format_log_header, format_log_line

#: Rows whose features are computed in one call (see data.py: per-call overhead).
CHUNK_ROWS = 65536

EvaluationHook = Callable[[dict[str, Any], Path], None]
#: (epochs trained when the round ran, [(n, margin V(n) - V(T n), None if not finite)]).
MiningHook = Callable[[int, list[tuple[int, float | None]]], None]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda' requested but no CUDA device is available")
    return torch.device(name)


def train(
    config: TrainConfig,
    *,
    run_dir: Path,
    resume_from: Path | None = None,
    overwrite: bool = False,
    on_evaluation: EvaluationHook | None = None,
    on_mined: MiningHook | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Train (or continue from `resume_from`) and return the last evaluation's metrics.

    The run holds run_dir's lock throughout. A new run refuses a directory that holds
    another run, unless `overwrite`: then the old run's files are removed first, once
    everything else has been checked.
    """
    run_dir = Path(run_dir)
    if overwrite and resume_from is not None:
        raise UsageError("overwrite starts a run over; it does not go with resuming one")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{run_dir}: cannot make the run directory ({err.strerror or err})") from None
    with run_lock(run_dir):
        return _train(
            config,
            run_dir=run_dir,
            resume_from=resume_from,
            overwrite=overwrite,
            on_evaluation=on_evaluation,
            on_mined=on_mined,
            verbose=verbose,
        )


def _train(
    config: TrainConfig,
    *,
    run_dir: Path,
    resume_from: Path | None,
    overwrite: bool,
    on_evaluation: EvaluationHook | None,
    on_mined: MiningHook | None,
    verbose: bool,
) -> dict[str, Any]:
    if resume_from is None and holds_run(run_dir) and not overwrite:
        raise UsageError(
            f"{run_dir}: holds a run already; continue it with --resume {run_dir}, "
            "or replace it with --overwrite"
        )
    resumed = None
    if resume_from is not None:
        state = load_checkpoint(resume_from)
        _check_resumable(config, state, resume_from)
        resumed = (resume_from, state)
    run = _start(config, resumed)
    # Every input is checked: only now may the directory change.
    _prepare_run_dir(run_dir, config, clear=resume_from is None and overwrite, start_epoch=run.start_epoch)
    last_metrics = _epochs(run, run_dir, on_evaluation=on_evaluation, on_mined=on_mined, verbose=verbose)
    write_atomically(run_dir / "model.pth", torch_bytes(seed_format(run.model)), durable=True)
    return last_metrics


def _check_resumable(config: TrainConfig, state: dict[str, Any], resume_from: Path) -> None:
    """A resumed run is the same run: only its epoch budget may change (and the device:
    a GPU run continued on a CPU then matches to float precision, not bit for bit)."""
    saved = TrainConfig.from_dict(state["config"], source=str(resume_from))
    changed = sorted(saved.replace(epochs=config.epochs, device=config.device).diff(config))
    if changed:
        raise UsageError(
            f"{resume_from}: resuming with settings other than the run's own "
            f"({', '.join(changed)}); only epochs and device may change"
        )
    if config.epochs < state["epoch"]:
        raise UsageError(f"{resume_from}: the run is at epoch {state['epoch']}, past epochs={config.epochs}")


@dataclasses.dataclass
class _Run:
    """What a run trains and evaluates with, built (or restored) before its first epoch."""

    config: TrainConfig
    device: torch.device
    spec: FeatureSpec
    evalset: EvalSet
    #: Recorded with every evaluation: pass rates compare only on the same evaluation set.
    evalset_sha256: str
    model: LyapunovMLP
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    sampler: BatchSampler
    start_epoch: int

    def checkpoint_state(self, epoch: int) -> dict[str, Any]:
        """Everything `_start` needs to continue the run exactly after `epoch`."""
        return {
            "config": self.config.to_dict(),
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }


def _start(config: TrainConfig, resumed: tuple[Path, dict[str, Any]] | None) -> _Run:
    """The run's model, optimiser, scheduler and sampler: new ones from the seed (built
    in this order, which fixes the draws each takes), restored from the checkpoint
    `resumed` holds (where it was read, its state) when resuming. Touches nothing in
    the run directory."""
    device = resolve_device(config.device)
    evalset = load_evalset(config.eval_csv or ensure_default_evalset())
    torch.manual_seed(config.seed)
    spec = FeatureSpec(config.lookahead, k_only=config.k_only, k_shifted=config.k_shifted)
    evalset_sha256 = file_sha256(evalset.path)
    # Read once, when a run starts; a resumed run has the numbers in its checkpoint.
    banked = (
        ranked_numbers(config.hard_seed_bank)
        if resumed is None and config.hard_seed_bank is not None
        else None
    )
    model = build_model(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience
    )
    sampler = BatchSampler(config, device=device)
    start_epoch = 0
    if resumed is not None:
        source, state = resumed
        with restoring(source):
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            sampler.load_state_dict(state["sampler"])
            torch.set_rng_state(state["torch_rng"])
        start_epoch = state["epoch"]
    elif banked is not None:
        sampler.use_bank(banked)
    return _Run(
        config, device, spec, evalset, evalset_sha256, model, optimizer, scheduler, sampler, start_epoch
    )


def _prepare_run_dir(run_dir: Path, config: TrainConfig, *, clear: bool, start_epoch: int) -> None:
    """The run directory as the run's first epoch expects it: an old run's files gone
    when `clear`, no partial checkpoint, no metrics past `start_epoch`, this config."""
    if clear:
        clear_run(run_dir)
    remove_partial_checkpoints(run_dir)
    truncate_metrics(run_dir / METRICS_FILE, after_epoch=start_epoch)
    write_atomically(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False), durable=True)


class _Interval:
    """The epochs since the last evaluation (their summed loss, their wall time) and the
    run's own start: what the progress line and an evaluation's rates are made of."""

    def __init__(self) -> None:
        self.run_start = self.start = time.monotonic()
        self.loss, self.epochs = 0.0, 0

    def restart(self) -> None:
        self.loss, self.epochs = 0.0, 0
        self.start = time.monotonic()

    def add(self, loss_value: float) -> None:
        self.loss += loss_value
        self.epochs += 1

    def rate(self) -> float:
        """Epochs a second so far in this interval; 0 before the clock moved."""
        elapsed = time.monotonic() - self.start
        return self.epochs / elapsed if elapsed > 0 else 0.0


def _epochs(
    run: _Run,
    run_dir: Path,
    *,
    on_evaluation: EvaluationHook | None,
    on_mined: MiningHook | None,
    verbose: bool,
) -> dict[str, Any]:
    """Train from run.start_epoch to config.epochs, mining, evaluating and checkpointing
    on schedule; the last evaluation's metrics."""
    config = run.config

    def say(line: str) -> None:
        if verbose:
            print(line, flush=True)

    say(format_log_header())  # on resume too: the lines that follow continue the run's log
    last_metrics: dict[str, Any] = {}
    progress = ProgressBar(config.epochs, enabled=verbose)
    queue: list[Batch] = []
    interval = _Interval()
    last_good = latest_checkpoint(run_dir)
    run.model.train()
    try:
        for epoch in range(run.start_epoch, config.epochs):
            if _is_mining_epoch(epoch, config):
                _mining_round(run, epoch, on_mined)
                queue.clear()  # batches drawn before this epoch saw the old pool
            if not queue:
                queue = run.sampler.draw_epochs(range(epoch, chunk_end(epoch, config)))
            loss_value = _step(run, queue.pop(0), epoch, last_good)
            interval.add(loss_value)
            done = epoch + 1
            rate = interval.rate()
            eta = (config.epochs - done) / rate if rate > 0 else 0.0
            progress.show(
                done, f"{done}/{config.epochs} loss {loss_value:.4f} {rate:.0f} ep/s eta {eta:.0f}s"
            )
            if done % config.eval_interval == 0 or done == config.epochs:
                metrics = _evaluation(run, done, interval, last_good)
                last_good = save_checkpoint(
                    run_dir, run.checkpoint_state(done), run.model, epoch=done, metrics=metrics
                )
                progress.clear()
                say(format_log_line(metrics))
                if on_evaluation is not None:
                    on_evaluation(metrics, last_good)
                last_metrics = metrics
                interval.restart()
    except TrainingDiverged:
        progress.clear()  # the reason starts a line of its own
        raise
    progress.clear()
    return last_metrics


def _mining_round(run: _Run, epoch: int, on_mined: MiningHook | None) -> None:
    kept = _mine(run.model, run.sampler, epoch, run.config)
    # Only the counterexamples (V(T n) >= V(n), or V not finite): at most mine_count a round.
    violating = [(n, m if math.isfinite(m) else None) for n, m in kept.items() if not m > 0]
    if on_mined is not None and violating:
        on_mined(epoch, violating)


def _step(run: _Run, batch: Batch, epoch: int, last_good: Path | None) -> float:
    """One epoch's optimiser step on `batch`; its loss. A loss that is not finite raises
    TrainingDiverged before the step."""
    loss = lyapunov_loss(run.model, batch, epoch, run.config)
    loss_value = float(loss.detach())
    if not math.isfinite(loss_value):
        raise _diverged(f"loss became {loss_value} at epoch {epoch + 1}", run.config, last_good)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.scheduler.step(loss_value)
    return loss_value


def _evaluation(run: _Run, done: int, interval: _Interval, last_good: Path | None) -> dict[str, Any]:
    """The metrics of the model after `done` epochs, with the interval's loss and rates.
    V nan or inf anywhere raises TrainingDiverged: a finite loss can still come with
    weights whose V overflows, and such a model is never checkpointed."""
    metrics = evaluate(
        run.model, run.spec, test_seeds=run.config.test_seeds, evalset=run.evalset, device=run.device
    )
    if metrics["traj_nonfinite"] or metrics["n_nonfinite"]:
        raise _diverged(
            f"V is nan or inf at epoch {done} ({metrics['traj_nonfinite']} held-out "
            f"trajectory values, {metrics['n_nonfinite']} evaluation margins)",
            run.config,
            last_good,
        )
    metrics.update(heldout_metrics(run.model, run.config, metrics, device=run.device))
    seconds = time.monotonic() - interval.start
    metrics.update(
        {
            "epoch": done,
            "loss": interval.loss / interval.epochs,
            "beta": run.model.beta,
            "lr": run.optimizer.param_groups[0]["lr"],
            "seconds": time.monotonic() - interval.run_start,
            "epochs_per_second": interval.epochs / seconds,
            "samples_per_second": interval.epochs * run.config.batch_size / seconds,
            "mined": len(run.sampler.mined),
            "eval_set_sha256": run.evalset_sha256,
        }
    )
    return metrics


def _diverged(what: str, config: TrainConfig, last_good: Path | None) -> TrainingDiverged:
    kept = f"last good checkpoint kept at {last_good}" if last_good else "no checkpoint was written yet"
    return TrainingDiverged(f"{what} (lr {config.lr:g}); {kept}")


def _is_mining_epoch(epoch: int, config: TrainConfig) -> bool:
    first = config.first_mining_epoch
    return config.mine_negatives and epoch >= first and (epoch - first) % config.mine_interval == 0


def chunk_end(epoch: int, config: TrainConfig) -> int:
    """Draw up to CHUNK_ROWS rows of epochs at once, never across a mining epoch."""
    end = min(config.epochs, epoch + max(1, CHUNK_ROWS // config.batch_size))
    if config.mine_negatives:
        first = config.first_mining_epoch
        if epoch < first:
            end = min(end, first)
        else:
            end = min(end, first + ((epoch - first) // config.mine_interval + 1) * config.mine_interval)
    return end


@torch.no_grad()
def _mine(model: LyapunovMLP, sampler: BatchSampler, epoch: int, config: TrainConfig) -> dict[int, float]:
    """Keep the mine_count distinct numbers of a fresh pool with the lowest margin
    V(n) - V(T n), and return them with their margins. Hard rows repeat values of short
    walks, and every copy of a weak value has the same margin: counted per row, one
    number could fill a whole round."""
    pool = sampler.draw_mining_pool(epoch)
    margin_rows = dataclasses.replace(pool, rows={0: pool.rows[0], 1: pool.rows[1]})
    was_training = model.training
    model.eval()
    v = values_at_offsets(model, margin_rows)
    model.train(was_training)
    margins = v[0] - v[1]
    order = torch.argsort(margins, stable=True)
    kept: dict[int, float] = {}
    for n, margin in zip(limbs.to_ints(pool.values[order]), margins[order].tolist()):
        if n not in kept:
            kept[n] = margin
            if len(kept) == config.mine_count:
                break
    sampler.add_mined(list(kept))
    return kept
