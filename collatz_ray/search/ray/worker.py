"""What runs in the trial's process (Ray Train's local mode): the plain trainer, with a
hook that reports each evaluation to Tune with its checkpoint, and one that appends the
numbers each mining round kept that violate to the experiment's counterexample bank
(trainer/bank.py).

Every checkpoint carries the trial's reports up to it (REPORTS_FILE) and names the run
of the search that made it. A trial Tune restarts within the same run (a killed
process, a lost node) resumes from the checkpoint of its last report, which Tune holds
with every report before it: nothing to replay. A trial resumed by a new run
(`--resume` after the driver died) also resumes from its newest checkpoint, but the
experiment's record of its reports (result.json in storage) is synced on its own
schedule and can end before or after that checkpoint. The first start in the new run
reports again those the record lacks, so every evaluation appears exactly once and in
order and ASHA judges the trial at every rung it passed; evaluations the record already
holds are not reported again when training redoes them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import ray
from ray import tune

from collatz_ray._bounded import lines as bounded_lines
from collatz_ray._bounded import loads, open_regular, size_of
from collatz_ray.errors import UsageError
from collatz_ray.search.objective import METRIC, TIME_ATTR, objective
from collatz_ray.trainer import bank as banking
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.loop import MiningHook

REPORTS_FILE = "reports.jsonl"


def train_worker(loop_config: dict[str, Any]) -> None:
    """The TorchTrainer's loop: `loop_config` holds the trial's TrainConfig as a dict, the
    worker's thread count, `search_run` (this run of the search), the `objective`,
    `trial_id` and `bank`, the experiment's bank file (None: mined numbers are not
    banked). Resumes from the trial's Tune checkpoint when there is one."""
    import torch

    from collatz_ray.trainer.loop import train

    torch.set_num_threads(max(1, int(loop_config["threads"])))
    config = TrainConfig.from_dict(loop_config["train"], source="trial config")
    search_run = loop_config["search_run"]
    with tempfile.TemporaryDirectory(prefix="collatz-trial-") as tmp:
        resume_from, reports, recorded = _restore(Path(tmp), search_run)
        node_id = ray.get_runtime_context().get_node_id()

        def report(metrics: dict[str, Any], checkpoint_dir: Path) -> None:
            metrics = {
                **metrics,
                METRIC: objective(metrics, kind=loop_config.get("objective", "log")),
                "node_id": node_id,
                "worker_pid": os.getpid(),
            }
            reports.append(metrics)
            write_reports(checkpoint_dir / REPORTS_FILE, search_run, reports)
            if metrics[TIME_ATTR] <= recorded:
                return  # redone after a restart; the record already holds this evaluation
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))

        train(
            config,
            run_dir=Path(tmp) / "run",
            resume_from=resume_from,
            on_evaluation=report,
            on_mined=bank_hook(loop_config.get("bank"), loop_config.get("trial_id")),
            verbose=False,
        )


def _restore(tmp: Path, search_run: str) -> tuple[Path | None, list[dict[str, Any]], int]:
    """(the checkpoint to resume from, the reports it carries, the last epoch the
    experiment's record holds), after reporting again what the record lacks."""
    recorded = recorded_through(tune.get_context().get_storage())
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None, [], recorded
    resume_from = Path(checkpoint.to_directory(str(tmp / "resume")))
    made_by, reports = read_reports(resume_from / REPORTS_FILE)
    if made_by == search_run:  # restarted by Tune in this run: it holds all of these
        return resume_from, reports, max([recorded, *(m.get(TIME_ATTR, 0) for m in reports)])
    missing = [m for m in reports if m.get(TIME_ATTR, 0) > recorded]
    for metrics in missing[:-1]:
        tune.report(metrics)
    if missing:
        # The last one goes with the checkpoint, now this run's: a restart within this
        # run then resumes from a checkpoint whose reports Tune all holds.
        write_reports(resume_from / REPORTS_FILE, search_run, reports)
        tune.report(missing[-1], checkpoint=tune.Checkpoint.from_directory(str(resume_from)))
        recorded = missing[-1][TIME_ATTR]
    return resume_from, reports, recorded


def recorded_through(storage: Any) -> int:
    """The last epoch this trial's record in the experiment (result.json in `storage`,
    Tune's StorageContext: a private class) holds: 0 for a new trial, else what a
    restarted trial need not report again."""
    try:
        with storage.storage_filesystem.open_input_stream(f"{storage.trial_fs_path}/result.json") as stream:
            data = stream.read()
    except OSError:  # FileNotFoundError: a new trial
        return 0
    last = 0
    for line in data.splitlines():
        try:
            epoch = json.loads(line).get(TIME_ATTR)
        except (ValueError, AttributeError):
            continue  # a torn last line, or not a report
        if isinstance(epoch, int) and not isinstance(epoch, bool):
            last = max(last, epoch)
    return last


def bank_hook(bank: str | None, trial_id: str | None) -> MiningHook | None:
    """The trainer's on_mined hook that appends a round's violating numbers to `bank`
    (None: no hook). A number too large to write in decimal is left out. A bank that
    cannot be written costs those records, never the trial: one line on stderr says so."""
    if bank is None:
        return None

    def banked(epoch: int, found: list[tuple[int, float | None]]) -> None:
        records = [
            banking.new_record(n, margin=margin, source="mining", trial=trial_id, epoch=epoch)
            for n, margin in found
            if banking.bankable(n)
        ]
        try:
            banking.append_records(Path(bank), records)
        except UsageError as err:
            print(
                f"collatz-ray: trial {trial_id}: the counterexamples mined at epoch {epoch} "
                f"were not banked: {err}",
                file=sys.stderr,
                flush=True,
            )

    return banked


def write_reports(path: Path, search_run: str, reports: list[dict[str, Any]]) -> None:
    """A checkpoint's REPORTS_FILE: the run that made it, then one report a line."""
    path.write_text(
        json.dumps({"search_run": search_run}) + "\n" + "".join(json.dumps(m) + "\n" for m in reports)
    )


#: Far above what a trial of 100000 epochs reports (a few kB an evaluation).
MAX_REPORTS_BYTES = 64 * 2**20


def read_reports(path: Path) -> tuple[str | None, list[dict[str, Any]]]:
    """(the run of the search that made them, the reports) a checkpoint carries;
    (None, []) for a checkpoint without them, or whose file is not a regular file of at
    most MAX_REPORTS_BYTES holding JSON objects (nested no deeper than
    _bounded.MAX_JSON_DEPTH): the trial then resumes from the checkpoint and replays
    nothing, and the record keeps what it holds."""
    lines = []
    try:
        with open_regular(path) as handle:
            if size_of(handle) > MAX_REPORTS_BYTES:
                return None, []
            for line in bounded_lines(handle, max_line=MAX_REPORTS_BYTES, limit=MAX_REPORTS_BYTES):
                if line.text is not None and line.text.strip():
                    lines.append(loads(line.text))
    except (OSError, ValueError):  # ValueError: not JSON, or nested too deep
        return None, []
    if not lines or not all(isinstance(line, dict) for line in lines):
        return None, []
    made_by = lines[0].get("search_run")
    return (made_by if isinstance(made_by, str) else None), lines[1:]
