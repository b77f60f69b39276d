"""The trackers of a real search, read back with each tracker's own tools: TensorBoard's
view of the event files every search writes (the session's smoke search), and one tiny
search with `--track mlflow --track wandb` (an MLflow store in the experiment, W&B
offline), whose runs must hold every trial's parameters and reports at their epochs."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from support.searches import TUNE, read_reports, trial_dirs, wait_for, write_space

REPO = Path(__file__).resolve().parents[2]
TRACKERS_DOC = REPO / "docs" / "trackers.md"


def reports_by_trial(experiment: Path) -> dict[str, list[dict]]:
    return {tid: read_reports(d / "result.json") for tid, d in trial_dirs(experiment).items()}


# -- TensorBoard ------------------------------------------------------------------------------
def test_tensorboard_files_plot_each_report_at_its_epoch(smoke_experiment):
    """Every trial folder of the README's search holds event files whose steps are the
    epochs it reported (20, 40, ...), not the count of its reports (1, 2, ...)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    reports = reports_by_trial(smoke_experiment)
    assert reports and any(len(r) > 1 for r in reports.values())  # some trial passed a rung
    for tid, trial_reports in reports.items():
        events = EventAccumulator(str(trial_dirs(smoke_experiment)[tid]))
        events.Reload()
        points = events.Scalars("ray/tune/objective")
        assert [p.step for p in points] == [r["epoch"] for r in trial_reports], tid
        assert [p.value for p in points] == pytest.approx([r["objective"] for r in trial_reports])
        assert "ray/tune/training_iteration" not in events.Tags()["scalars"]


def documented_tensorboard_command() -> list[str]:
    """The one TensorBoard command docs/trackers.md shows."""
    lines = [
        line.strip()
        for line in TRACKERS_DOC.read_text().splitlines()
        if line.strip().startswith("tensorboard ")
    ]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def test_the_documented_tensorboard_command_shows_the_epochs(smoke_experiment, tmp_path):
    """`tensorboard --logdir results/NAME`, as docs/trackers.md shows it, on the smoke
    search (which it only reads), on a free loopback port: its scalars API serves each
    trial's objective at the epochs the trial reported."""
    words = documented_tensorboard_command()
    assert words[:2] == ["tensorboard", "--logdir"] and words[2].startswith("results/"), words
    words[2] = str(smoke_experiment)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    errors = tmp_path / "tensorboard.err"
    with open(errors, "w") as stderr:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / words[0]),
                *words[1:],
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        reports = reports_by_trial(smoke_experiment)
        for tid, trial_reports in reports.items():
            query = urllib.parse.urlencode({"run": f"collatz_trial_{tid}", "tag": "ray/tune/objective"})
            steps = _served_steps(
                f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?{query}",
                [r["epoch"] for r in trial_reports],
                server,
                errors,
            )
            assert steps == [r["epoch"] for r in trial_reports], tid
    finally:
        server.terminate()
        server.wait(timeout=30)


def _served_steps(
    url: str, expected: list[int], server: subprocess.Popen, errors: Path, timeout: float = 120
) -> list[int]:
    """The steps TensorBoard serves for a run, polled until they are `expected` or the
    time is up (it starts, then reads the files in the background)."""
    deadline, steps = time.monotonic() + timeout, []
    while True:
        assert server.poll() is None, f"tensorboard exited: {errors.read_text()[-2000:]}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                steps = [step for _, step, _ in json.loads(response.read())]
        except OSError:  # not listening yet, or the run not loaded yet (400)
            pass
        if steps == expected or time.monotonic() > deadline:
            return steps
        time.sleep(1)


# -- MLflow and W&B ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tracked_search(tmp_path_factory, eval_csv):
    """Two tiny trials of 40 epochs (evaluated at 20 and 40) logged to MLflow and W&B
    (offline), each into the experiment as it does by default; W&B's own settings and
    caches kept in the test's directory."""
    root = tmp_path_factory.mktemp("tracked")
    space = write_space(
        root / "tracked.yaml",
        budget={"num_samples": 2, "epochs": 40, "grace_epochs": 40},
        parameters={"lookahead": {"values": [5, 10]}},
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "WANDB_"))}
    env.update(
        WANDB_MODE="offline",
        RAY_ADDRESS="local",
        **{
            var: str(root / "wandb_home" / var)
            for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR")
        },
    )
    proc = subprocess.run(
        [
            *TUNE,
            "--space",
            str(space),
            "--storage",
            str(root / "store"),
            "--name",
            "tracked",
            "--eval-csv",
            str(eval_csv),
            "--max-concurrent",
            "2",
            "--track",
            "mlflow",
            "--track",
            "wandb",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=root,
        env=env,
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc, root / "store" / "tracked"


def test_the_plan_names_the_trackers_and_none_failed(tracked_search):
    proc, experiment = tracked_search
    assert (
        f"Tracking: TensorBoard (tensorboard --logdir {experiment}), "
        f"MLflow sqlite:///{experiment.resolve()}/mlflow.db, W&B project tracked (offline)"
    ) in proc.stdout
    assert "stopped logging" not in proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr[-3000:]
    assert json.loads((experiment / "collatz_search.json").read_text())["track"] == ["mlflow", "wandb"]


def test_mlflow_holds_a_run_per_trial_with_its_parameters_and_epochs(tracked_search):
    from mlflow.tracking import MlflowClient

    _, experiment = tracked_search
    reports = reports_by_trial(experiment)
    assert len(reports) == 2
    client = MlflowClient(f"sqlite:///{experiment / 'mlflow.db'}")
    mlflow_experiment = client.get_experiment_by_name("tracked")
    assert mlflow_experiment is not None
    runs = {run.info.run_name: run for run in client.search_runs([mlflow_experiment.experiment_id])}
    assert sorted(runs) == sorted(f"collatz_trial_{tid}" for tid in reports)
    for tid, trial_reports in reports.items():
        run = runs[f"collatz_trial_{tid}"]
        assert run.info.status == "FINISHED"
        params = json.loads((trial_dirs(experiment)[tid] / "params.json").read_text())
        assert run.data.params == {key: str(value) for key, value in params.items()}
        history = client.get_metric_history(run.info.run_id, "objective")
        assert [m.step for m in history] == [r["epoch"] for r in trial_reports]
        assert [m.value for m in history] == pytest.approx([r["objective"] for r in trial_reports])
        assert [m.step for m in client.get_metric_history(run.info.run_id, "traj_total_violations")] == [
            r["epoch"] for r in trial_reports
        ]
        assert "training_iteration" not in run.data.metrics  # the step is the epoch; no count beside it


def test_wandb_offline_runs_hold_each_trials_reports_at_their_epochs(tracked_search):
    _, experiment = tracked_search
    reports = reports_by_trial(experiment)
    run_files = {
        re.sub(r"^offline-run-\d+_\d+-", "", f.parent.name): f
        for f in (experiment / "wandb").glob("offline-run-*/run-*.wandb")
    }
    assert sorted(run_files) == sorted(reports)
    for tid, trial_reports in reports.items():
        # W&B's own service process writes the run file. Ray used to kill it before it
        # had flushed (one fresh-clone run in four read an empty history); the search
        # now waits for it (wandb_tracker.py), and this wait only covers a slow disk.
        run, config, history = wait_for(
            lambda: _whole_run(run_files[tid], len(trial_reports)),
            timeout=60,
            what=f"W&B's history of trial {tid}",
        )
        assert (run.run_id, run.project, run.run_group, run.display_name) == (
            tid,
            "tracked",
            "tracked",
            f"collatz_trial_{tid}",
        )
        params = json.loads((trial_dirs(experiment)[tid] / "params.json").read_text())
        assert {key: config[key] for key in params} == params
        assert [step for step, _ in history] == [r["epoch"] for r in trial_reports]
        assert [items["objective"] for _, items in history] == pytest.approx(
            [r["objective"] for r in trial_reports]
        )


def _whole_run(path: Path, reports: int):
    """The run file's contents once it holds `reports` history rows, else None."""
    from google.protobuf.message import DecodeError

    try:
        run, config, history = read_wandb_run(path)
    except (OSError, ValueError, struct.error, AssertionError, DecodeError):
        return None  # not yet written, or a chunk being written
    return (run, config, history) if len(history) >= reports else None


def read_wandb_run(path: Path):
    """(run record, config, [(step, logged values)]) of an offline W&B run file: the
    LevelDB log format (32 KiB blocks of checksummed chunks) after a 7-byte W&B header,
    each record one protobuf of wandb's own."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    run, config, history = None, {}, []

    def values(items) -> dict:
        return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}

    for raw in _log_records(data, start=7):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            config.update(values(record.run.config.update))
        elif kind == "config":
            config.update(values(record.config.update))
        elif kind == "history":
            history.append((record.history.step.num, values(record.history.item)))
    assert run is not None, f"{path}: no run record"
    return run, config, history


def _log_records(data: bytes, *, start: int):
    block, pos, pending = 32 * 1024, start, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        if kind == 1:  # a whole record
            yield chunk
        elif kind == 2:  # its first chunk
            pending = chunk
        elif kind == 3:  # a middle one
            pending += chunk
        elif kind == 4:  # its last
            yield pending + chunk
            pending = b""
