"""An MLflow server that refuses or never answers costs the search one warning within
seconds, not minutes of retries in the driver's loop."""

from __future__ import annotations

import time

import pytest
from support.servers import refusing_port, silent_server

from collatz_ray.search.tracking import Tracker

pytest.importorskip("mlflow")


@pytest.fixture
def mlflow_defaults(monkeypatch):
    """MLflow's variables as a user's shell has them: unset (restored afterwards)."""
    from collatz_ray.search.ray.mlflow_tracker import MLFLOW_BOUNDS

    for name in MLFLOW_BOUNDS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def silent_port():
    with silent_server() as port:
        yield port


@pytest.mark.parametrize("kind", ["refuses", "never answers"])
def test_an_unreachable_server_is_one_warning_within_ten_seconds(kind, mlflow_defaults, silent_port, capsys):
    from collatz_ray.search.ray.mlflow_tracker import mlflow_callback

    port = refusing_port() if kind == "refuses" else silent_port
    callback = mlflow_callback(Tracker("mlflow", f"http://127.0.0.1:{port}"), experiment="bounded")
    started = time.monotonic()
    callback._guard(callback._open)  # what the first trial's start does
    callback._guard(callback._open)  # and nothing more once it has failed
    elapsed = time.monotonic() - started
    warnings = [line for line in capsys.readouterr().err.splitlines() if "MLflow stopped logging" in line]
    assert len(warnings) == 1 and warnings[0].startswith("collatz_ray.tune: warning: "), warnings
    assert elapsed < 10, f"{kind}: {elapsed:.1f} s before the search could go on"
