"""`python -m collatz_ray.tune --track ...`: bad values, a tracker whose package is
missing, a W&B without a login, and a resume that would change the trackers are each
refused in one line with exit status 2, before Ray starts; a dry run names where the
search will log."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from support.clitools import run_command, tree_digest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("foo", "argument --track: expected mlflow, mlflow=URI or wandb, got 'foo'"),
        ("mlflow=", "argument --track: expected a tracking URI after 'mlflow=', got 'mlflow='"),
        ("mlflow=  ", "expected a tracking URI after 'mlflow='"),
        ("wandb=x", "argument --track: wandb takes no value, got 'wandb=x'"),
        ("MLflow", "expected mlflow, mlflow=URI or wandb"),
        ("", "expected mlflow, mlflow=URI or wandb, got ''"),
    ],
)
def test_a_bad_track_value_is_one_line(tmp_path, value, fragment):
    outcome = run_command("tune", "--space", "smoke", "--storage", tmp_path / "r", "--track", value)
    outcome.one_error_line(fragment)
    assert not (tmp_path / "r").exists()


def test_a_tracker_given_twice_is_one_line(tmp_path):
    run_command(
        "tune",
        "--space",
        "smoke",
        "--storage",
        tmp_path,
        "--track",
        "mlflow",
        "--track",
        "mlflow=sqlite:///elsewhere.db",
    ).one_error_line("--track mlflow is given 2 times")


def test_mlflow_without_a_uri_on_remote_storage_is_one_line(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_command(
        "tune", "--space", "smoke", "--storage", "s3://bucket/prefix", "--track", "mlflow", "--dry-run"
    ).one_error_line("--track mlflow", "s3://bucket/prefix", "--track mlflow=URI")


def test_wandb_online_without_a_key_is_one_line(tmp_path, monkeypatch):
    """No WANDB_API_KEY, no `wandb login` (a home of its own), not offline: refused here,
    not by Ray with a traceback once the search runs."""
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    run_command("tune", "--space", "smoke", "--storage", tmp_path / "r", "--track", "wandb").one_error_line(
        "--track wandb: W&B has no API key", "WANDB_MODE=offline"
    )


@pytest.mark.parametrize("missing, flag", [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_a_missing_tracker_package_is_one_line_before_ray(tmp_path, missing, flag):
    """In a Python that sees every installed package but `missing` (a site directory of
    links to all the others, no site hooks), the search is refused with the extra to
    install, and neither Ray nor torch was imported."""
    site = tmp_path / "site"
    site.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith(missing) and not entry.name.endswith(".pth"):
            (site / entry.name).symlink_to(entry)
    code = (
        "import sys\nfrom collatz_ray import tune\ntry:\n"
        f"    tune.main(['--space', 'smoke', '--storage', {str(tmp_path / 'r')!r}, '--track', {flag!r}])\n"
        "except SystemExit as e:\n    print(e.code, 'ray' in sys.modules, 'torch' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": f"{REPO}:{site}", "PATH": "/usr/bin:/bin", "WANDB_MODE": "offline"},
    )
    assert proc.stdout.split() == ["2", "False", "False"], (proc.stdout, proc.stderr[-2000:])
    assert proc.stderr.strip() == (
        f"collatz_ray.tune: error: --track {flag}: the {missing} package is not "
        f"installed; pip install 'collatz-ray[{missing}]'"
    )


def test_a_dry_run_names_where_the_search_logs(tmp_path, monkeypatch, eval_csv):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    outcome = run_command(
        "tune",
        "--space",
        "smoke",
        "--storage",
        tmp_path,
        "--name",
        "tracked",
        "--dry-run",
        "--eval-csv",
        eval_csv,
        "--track",
        "mlflow",
        "--track",
        "wandb",
    )
    assert outcome.status == 0, outcome.stderr
    assert (
        f"Tracking: TensorBoard (tensorboard --logdir {tmp_path / 'tracked'}), MLflow "
        f"sqlite:///{tmp_path.resolve() / 'tracked' / 'mlflow.db'}, W&B project tracked (offline)"
    ) in outcome.stdout.splitlines()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("WANDB_PROJECT", "collatz")
    outcome = run_command(
        "tune",
        "--space",
        "smoke",
        "--storage",
        tmp_path,
        "--name",
        "tracked",
        "--dry-run",
        "--eval-csv",
        eval_csv,
        "--track",
        "mlflow",
        "--track",
        "wandb",
    )
    assert "MLflow http://127.0.0.1:5000, W&B project collatz (offline)" in outcome.stdout


# -- resuming -----------------------------------------------------------------------------------


@pytest.fixture
def experiment(old_layout_experiment) -> Path:
    return old_layout_experiment


def test_resume_refuses_other_trackers_than_the_search_started_with(experiment):
    before = tree_digest(experiment)
    outcome = run_command(
        "tune", "--resume", "--name", experiment.name, "--storage", experiment.parent, "--track", "mlflow"
    )
    outcome.one_error_line(
        "--track mlflow: experiment old-layout was started with no --track", "drop --track"
    )
    assert tree_digest(experiment) == before


def test_resume_keeps_the_saved_trackers_and_checks_them(experiment, eval_csv, monkeypatch):
    """The saved choice is what a resume tracks with (a dry run names it); repeating it
    is allowed, changing it is not."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    settings = experiment / "collatz_search.json"
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "track": ["wandb"]}))
    outcome = run_command(
        "tune",
        "--resume",
        "--name",
        experiment.name,
        "--storage",
        experiment.parent,
        "--dry-run",
        "--eval-csv",
        eval_csv,
    )
    assert outcome.status == 0, outcome.stderr
    assert "W&B project old-layout (offline)" in outcome.stdout
    assert (
        run_command(
            "tune",
            "--resume",
            "--name",
            experiment.name,
            "--storage",
            experiment.parent,
            "--dry-run",
            "--eval-csv",
            eval_csv,
            "--track",
            "wandb",
        ).status
        == 0
    )
    run_command(
        "tune", "--resume", "--name", experiment.name, "--storage", experiment.parent, "--track", "mlflow"
    ).one_error_line("started with --track wandb")


@pytest.mark.parametrize(
    "saved, fragment",
    [
        ("mlflow", "track: expected a list of --track values, got 'mlflow'"),
        (["neptune"], "track: expected mlflow, mlflow=URI or wandb, got 'neptune'"),
        ([7], "track: expected a list of --track values"),
    ],
)
def test_resume_of_a_damaged_track_setting_is_one_line(experiment, saved, fragment):
    settings = experiment / "collatz_search.json"
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "track": saved}))
    before = tree_digest(experiment)
    outcome = run_command("tune", "--resume", "--name", experiment.name, "--storage", experiment.parent)
    outcome.one_error_line("collatz_search.json", fragment)
    assert tree_digest(experiment) == before
