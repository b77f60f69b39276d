"""What the trackers see of a report, and a tracker that fails: one line, then silence,
and the search's loop goes on. Real MLflow, no Ray cluster needed (Ray's callbacks are
plain objects until a search hands them reports)."""

from __future__ import annotations

import socket
import subprocess
import sys

from collatz_ray.search.tracking import Tracker, parse_tracker


def test_track_values_parse_to_trackers():
    assert parse_tracker("mlflow") == Tracker("mlflow")
    assert parse_tracker("mlflow=http://127.0.0.1:5000") == Tracker("mlflow", "http://127.0.0.1:5000")
    # A URI keeps its own '=' signs; the saved form is what was typed.
    tracker = parse_tracker("mlflow=databricks://profile?x=1")
    assert tracker.uri == "databricks://profile?x=1" and str(tracker) == "mlflow=databricks://profile?x=1"
    assert parse_tracker("wandb") == Tracker("wandb")


def test_trackers_see_the_epoch_as_the_step_and_no_config():
    from collatz_ray.search.ray.tracker_callbacks import at_epoch

    report = {"epoch": 40, "training_iteration": 2, "objective": 3.5, "config": {"lookahead": 5}}
    assert at_epoch(report) == {"epoch": 40, "training_iteration": 40, "objective": 3.5}
    assert report["training_iteration"] == 2  # Tune's own result is left as it was
    assert at_epoch({"training_iteration": 3, "loss": 1.0}) == {"training_iteration": 3, "loss": 1.0}


def test_a_tracker_that_fails_says_so_once_and_logs_nothing_more(monkeypatch, capfd):
    """MLflow pointed at a loopback port where nothing listens: opening the store fails,
    which is one warning line; the trial's start, reports and end then pass silently."""
    from ray.tune.experiment import Trial

    from collatz_ray.search.ray.mlflow_tracker import mlflow_callback

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    callback = mlflow_callback(Tracker("mlflow", f"http://127.0.0.1:{port}"), experiment="unreachable")
    trial = Trial("collatz_trial", config={"lookahead": 5}, trial_id="abc12345", stub=True)
    callback.setup()
    callback.log_trial_start(trial)
    for epoch in (20, 40):
        callback.log_trial_result(epoch // 20, trial, {"epoch": epoch, "objective": 1.5})
    callback.log_trial_end(trial)
    lines = [line for line in capfd.readouterr().err.splitlines() if "stopped logging" in line]
    assert len(lines) == 1, lines
    assert lines[0].startswith("collatz_ray.tune: warning: MLflow stopped logging (")
    assert lines[0].endswith("the search goes on and its own files keep every report")
    assert f"127.0.0.1:{port}" in lines[0] or "Connection" in lines[0], lines[0]


def test_a_search_without_track_never_imports_mlflow_or_wandb():
    """Seconds each: they load only when --track asks for them."""
    code = (
        "import sys\nfrom collatz_ray.search.ray import tracker_callbacks, tuner\n"
        "print('mlflow' in sys.modules, 'wandb' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["False", "False"], proc.stderr[-2000:]


def test_a_resumed_trial_goes_on_in_its_own_wandb_run():
    """Ray's W&B callback starts each trial's run with the trial id and no resume; ours
    asks W&B to resume that run when it exists (a trial that --resume continues)."""
    from collatz_ray.search.ray.wandb_tracker import EpochWandb

    tracker = EpochWandb(project="p", in_experiment=False)
    assert tracker.kwargs["resume"] == "allow"
