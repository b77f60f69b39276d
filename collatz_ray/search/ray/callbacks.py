"""What Tune is told to do besides running trials: keep a restarted trial's history, put
a failed trial's reason first in its error.txt, and stop when storage gives out or when
no trial can be placed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ray import tune

from collatz_ray.search.failures import SearchHalted
from collatz_ray.search.ray.trial import TrialFailed
from collatz_ray.search.storage import StorageFailed, storage_write_problem

if TYPE_CHECKING:
    from ray.tune.experiment import Trial


class KeepTrialHistory(tune.Callback):
    """A trial restarted by --resume keeps the reports it made before the crash.

    Tune copies a trial's result.json and progress.csv back from storage on restore only
    when the trial saved a Tune checkpoint. A trial that has none (it was started by a
    collatz-ray that kept checkpoints in Ray Train, under _train/) would begin these
    files afresh in the new session's staging directory, and the next sync would
    overwrite the stored history with the reports after the crash alone. Copy them back
    first (whole lines only); the trial's loggers then append to them."""

    FILES = ("result.json", "progress.csv")

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if trial.checkpoint is not None or not trial.local_path:
            return  # Tune restores these itself
        assert trial.storage is not None  # Ray types it optional; a Tuner's trials always have it
        local, storage = Path(trial.local_path), trial.storage
        for name in self.FILES:
            target = local / name
            if target.exists():
                continue  # this session already writes it
            try:
                with storage.storage_filesystem.open_input_stream(
                    f"{storage.trial_fs_path}/{name}"
                ) as stream:
                    data = stream.read()
            except OSError:  # FileNotFoundError: a new trial
                continue
            data = data[: data.rfind(b"\n") + 1]
            if data:
                local.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)


class ReasonFirst(tune.Callback):
    """Puts a failed trial's one-line reason (e.g. `TrainingDiverged: loss became nan
    at epoch 2 ...`) at the top of its error.txt. Tune writes a "Failure # N" line and a
    page of remote traceback, and the reason only at the very end."""

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        try:
            path = Path(trial.error_file or "")
            text = path.read_text()
        except (OSError, ValueError):
            return
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        marker = f"{TrialFailed.__name__}: "
        reasons = [line[line.index(marker) + len(marker) :] for line in lines if marker in line]
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
    Tune's loop without its final sync (tune.run syncs only after a clean loop).

    Tune saves the guard with the experiment and a resumed search runs the saved one: it
    names where the experiment was then (a copied or moved one is elsewhere now) and its
    last probe on that process's clock. A guard unpickled in a search guards
    `StorageGuard.running`, the experiment this process runs, and probes at once."""

    #: The experiment directory of the search this process runs (set before Tune restores).
    running: ClassVar[str | None] = None

    def __init__(self, path: str, every_s: float = 1.0) -> None:
        self.path, self.every_s = path, every_s
        self._last = 0.0

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._last = 0.0
        if StorageGuard.running is not None:
            self.path = StorageGuard.running

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


class TrialsNotPlaced(SearchHalted):
    """No trial could be placed on the cluster for the start timeout."""


class PlacementGuard(tune.Callback):
    """Ends the search when it has trials waiting and none running for `timeout_s`.

    Tune schedules a trial only where its CPUs and GPUs are free, and waits, with a
    warning, for as long as it takes. A cluster whose resources are held by something
    else, or that never grows to fit a trial, would keep the search waiting forever;
    a trial that waits its turn behind running trials is normal and never counts."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._idle_since: float | None = None

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        statuses = {trial.status for trial in trials}
        if "RUNNING" in statuses or "PENDING" not in statuses:
            self._idle_since = None
            return
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        elif now - self._idle_since > self.timeout_s:
            waiting = [trial for trial in trials if trial.status == "PENDING"]
            # Ray declares the factory None until Tune creates it, as it has for a pending trial.
            asked = waiting[0].placement_group_factory.required_resources  # type: ignore[attr-defined]
            raise TrialsNotPlaced(
                f"no trial could start within {self.timeout_s:g} s: each asks for "
                f"{asked.get('CPU', 0):g} CPU + {asked.get('GPU', 0):g} GPU, which the cluster has not "
                "had free, or it was too busy to start one (COLLATZ_RAY_START_TIMEOUT_S sets the "
                "wait); resume once it has room"
            )
