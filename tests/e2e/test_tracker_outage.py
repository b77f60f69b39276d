"""Services we do not own cannot stall a search: a real search tracking to MLflow (a
tracking server URI) and W&B (online, its server at $WANDB_BASE_URL) where one port
refuses connections and the other accepts them and never answers. Each tracker is one
warning within 10 s of the search's start (its plan printed), and the trials run and
finish without it."""

from __future__ import annotations

import time

import pytest
from support.searches import Search, read_reports, trial_dirs, trial_states, wait_for, write_space
from support.servers import refusing_port, silent_server

pytest.importorskip("mlflow")
pytest.importorskip("wandb")

#: The plan's last line, printed (and flushed) just before the search starts.
PLAN_END = "Tracking: "


# One real search: each tracker against each kind of dead server is checked where the
# search starts them (tests/search/ray/test_tracker_reach.py); this proves the whole path.
@pytest.mark.parametrize("mlflow_server, wandb_server", [("never answers", "refuses")])
def test_unreachable_trackers_are_one_warning_each_and_the_search_goes_on(
    tmp_path, eval_csv, monkeypatch, mlflow_server, wandb_server
):
    for var in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    space = write_space(
        tmp_path / "outage.yaml",
        budget={"num_samples": 2, "epochs": 20, "grace_epochs": 20},
        parameters={"lookahead": {"values": [5, 10]}},
    )
    with silent_server() as silent:
        ports = {"refuses": refusing_port(), "never answers": silent}
        mlflow_url = f"http://127.0.0.1:{ports[mlflow_server]}"
        wandb_url = f"http://127.0.0.1:{ports[wandb_server]}"
        search = Search(
            tmp_path,
            "outage",
            "--space",
            str(space),
            "--storage",
            str(tmp_path / "store"),
            "--name",
            "outage",
            "--eval-csv",
            str(eval_csv),
            "--max-concurrent",
            "2",
            "--track",
            f"mlflow={mlflow_url}",
            "--track",
            "wandb",
            env={
                "RAY_ADDRESS": "local",
                "WANDB_API_KEY": "0" * 40,  # online W&B: the key is never checked, the server never reached
                "WANDB_BASE_URL": wandb_url,
                "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"),
                "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
                "WANDB_DATA_DIR": str(tmp_path / "wandb_data"),
            },
        )
        try:
            wait_for(
                lambda: PLAN_END in search.stdout(), timeout=600, what="the plan", every=0.1, alive=search
            )
            started = time.monotonic()
            for what in ("MLflow", "W&B"):
                wait_for(
                    lambda what=what: f"{what} stopped logging" in search.stderr(),
                    timeout=60,
                    what=f"the {what} warning",
                    every=0.1,
                    alive=search,
                )
                assert time.monotonic() - started < 10, (
                    f"{what}: the warning came after {time.monotonic() - started:.1f} s"
                )
            assert search.wait(timeout=600) == 0, search.stderr()[-3000:]
        finally:
            assert not search.cleanup(), "processes of the search outlived it"
    stderr = search.stderr()
    for what, url, server in (("MLflow", mlflow_url, mlflow_server), ("W&B", wandb_url, wandb_server)):
        (line,) = [line for line in stderr.splitlines() if f"{what} stopped logging" in line]
        reason = "did not answer within" if server == "never answers" else "cannot be reached"
        assert line.startswith(f"collatz_ray.tune: warning: {what} stopped logging ({url} {reason}"), line
    assert "Traceback" not in stderr, stderr[-3000:]
    experiment = tmp_path / "store" / "outage"
    assert set(trial_states(experiment).values()) == {"TERMINATED"}
    reports = {tid: read_reports(d / "result.json") for tid, d in trial_dirs(experiment).items()}
    assert len(reports) == 2 and all(r and r[-1]["epoch"] == 20 for r in reports.values()), reports
    assert not (experiment / "wandb").exists()  # no W&B run was started
