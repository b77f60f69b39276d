"""What runs in the Ray Train worker: the plain trainer, with a hook that reports each
evaluation and its checkpoint to Ray Train, and one that appends the numbers each mining
round kept that violate to the experiment's counterexample bank (trainer/bank.py).

Every checkpoint carries the trial's reports up to it (REPORTS_FILE), and which start
of the Tune trial made them. A trial restarted after its driver died resumes from its
newest Train checkpoint, but the experiment's record of its reports (result.json in
storage) is synced less often than checkpoints are registered, so it can end before the
checkpoint does. The first worker of the restarted trial replays the reports between
the two, so every evaluation appears exactly once and in order, and ASHA judges the
trial at every rung it passed; evaluations that the record already holds are not
reported again when training redoes them. A worker that Ray Train restarts within the
same trial start (a crashed worker) replays nothing: this start reported all of those.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import ray
from ray import train as ray_train

from collatz_ray.errors import UsageError
from collatz_ray.search.objective import METRIC, TIME_ATTR, objective
from collatz_ray.trainer import bank as banking
from collatz_ray.trainer.config import TrainConfig


REPORTS_FILE = "reports.jsonl"


def train_worker(loop_config: dict[str, Any]) -> None:
    """The TorchTrainer's loop: `loop_config` holds the trial's TrainConfig as a dict, the
    worker's thread count and `recorded_through`, the last epoch the experiment's record
    of this trial holds, `trial_id` and `bank`, the experiment's bank file (None: mined
    numbers are not banked). Resumes from Ray Train's checkpoint when there is one."""
    import torch

    from collatz_ray.trainer.loop import train

    torch.set_num_threads(max(1, int(loop_config["threads"])))
    config = TrainConfig.from_dict(loop_config["train"], source="trial config")
    with tempfile.TemporaryDirectory(prefix="collatz-trial-") as tmp:
        recorded = int(loop_config.get("recorded_through", 0))
        trial_start = loop_config.get("trial_start")
        resume_from, reports = None, []
        checkpoint = ray_train.get_checkpoint()
        if checkpoint is not None:
            resume_from = Path(checkpoint.to_directory(os.path.join(tmp, "resume")))
            made_by, reports = read_reports(resume_from / REPORTS_FILE)
            if made_by != trial_start:
                for metrics in reports:
                    if metrics.get(TIME_ATTR, 0) > recorded:
                        ray_train.report(metrics)

        node_id = ray.get_runtime_context().get_node_id()

        def report(metrics: dict[str, Any], checkpoint_dir: Path) -> None:
            metrics = {**metrics, METRIC: objective(metrics, kind=loop_config.get("objective", "log")), "node_id": node_id, "worker_pid": os.getpid()}
            reports.append(metrics)
            (checkpoint_dir / REPORTS_FILE).write_text(
                json.dumps({"trial_start": trial_start}) + "\n" + "".join(json.dumps(m) + "\n" for m in reports))
            if metrics[TIME_ATTR] <= recorded:
                return  # redone after a restart; the record already holds this evaluation
            ray_train.report(metrics, checkpoint=ray_train.Checkpoint.from_directory(str(checkpoint_dir)))

        train(config, run_dir=Path(tmp) / "run", resume_from=resume_from,
              on_evaluation=report, on_mined=bank_hook(loop_config.get("bank"), loop_config.get("trial_id")),
              verbose=False)


def bank_hook(bank: str | None, trial_id: str | None):
    """The trainer's on_mined hook that appends a round's violating numbers to `bank`
    (None: no hook). A number too large to write in decimal is left out. A bank that
    cannot be written costs those records, never the trial: one line on stderr says so."""
    if bank is None:
        return None

    def banked(epoch: int, found: list[tuple[int, float | None]]) -> None:
        records = [banking.new_record(n, margin=margin, source="mining", trial=trial_id, epoch=epoch)
                   for n, margin in found if banking.bankable(n)]
        try:
            banking.append_records(Path(bank), records)
        except UsageError as err:
            print(f"collatz-ray: trial {trial_id}: the counterexamples mined at epoch {epoch} "
                  f"were not banked: {err}", file=sys.stderr, flush=True)

    return banked


def read_reports(path: Path) -> tuple[str | None, list[dict[str, Any]]]:
    """(the trial start that made them, the reports) a checkpoint carries; (None, []) for
    checkpoints made before they did."""
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return None, []
    if not lines:
        return None, []
    return json.loads(lines[0]).get("trial_start"), [json.loads(line) for line in lines[1:]]
