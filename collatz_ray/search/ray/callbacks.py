"""What Tune is told to do besides running trials: keep a restarted trial's history, put
a failed trial's reason first in its error.txt, and stop when storage gives out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ray import tune

from collatz_ray.search.ray.trial import TrialFailed
from collatz_ray.search.storage import StorageFailed, storage_write_problem


class KeepTrialHistory(tune.Callback):
    """A trial restarted by --resume keeps the reports it made before the crash.

    Tune copies a trial's result.json and progress.csv back from storage on restore only
    when the trial saved a Tune checkpoint. Ours keep their checkpoints in Ray Train, so
    the restarted trial would begin these files afresh in the new session's staging
    directory and the next sync would overwrite the stored history with the reports
    after the crash alone. Copy them back first (whole lines only); the trial's loggers
    then append to them, and training itself resumes from the Train checkpoint."""

    FILES = ("result.json", "progress.csv")

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if trial.checkpoint is not None or not trial.local_path:
            return  # Tune restores these itself
        local, storage = Path(trial.local_path), trial.storage
        for name in self.FILES:
            target = local / name
            if target.exists():
                continue  # this session already writes it
            try:
                with storage.storage_filesystem.open_input_stream(
                        f"{storage.trial_fs_path}/{name}") as stream:
                    data = stream.read()
            except OSError:  # FileNotFoundError: a new trial
                continue
            data = data[:data.rfind(b"\n") + 1]
            if data:
                local.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)


class ReasonFirst(tune.Callback):
    """Puts a failed trial's one-line reason (e.g. `TrainingDiverged: loss became nan
    at epoch 2 ...`) at the top of its error.txt. Tune writes a "Failure # N" line and a
    page of remote traceback, and the reason only at the very end."""

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        try:
            path = Path(trial.error_file or "")
            text = path.read_text()
        except (OSError, ValueError):
            return
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        marker = f"{TrialFailed.__name__}: "
        reasons = [line[line.index(marker) + len(marker):] for line in lines if marker in line]
        reason = reasons[-1] if reasons else (lines[-1] if lines else "")
        if reason:
            try:
                path.write_text(f"{reason[:500]}\n{text}")
            except OSError:
                pass


class StorageGuard(tune.Stopper):
    """Ends the search as soon as the experiment's storage stops taking writes.

    Every remaining trial would fail the same way, one after the other, and Ray's
    periodic sync rewrites each result file in place (truncate, then write), so every
    further sync onto a full disk can cut files that were complete. Raising here ends
    Tune's loop without its final sync (tune.run syncs only after a clean loop)."""

    def __init__(self, path: str, every_s: float = 1.0) -> None:
        self.path, self.every_s = path, every_s
        self._last = 0.0

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            problem = storage_write_problem(self.path)
            if problem is not None:
                raise StorageFailed(problem)
        return False
