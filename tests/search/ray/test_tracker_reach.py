"""A tracker's server is asked once, as the search starts, whether it answers: one that
refuses, or accepts and keeps silent, is one warning within seconds and the tracker logs
nothing more; one that answers anything is used. Real loopback sockets and servers."""

from __future__ import annotations

import http.server
import threading
import time

import pytest
from support.servers import refusing_port, silent_server

from collatz_ray.search.tracking import Tracker, unreachable, wandb_server


@pytest.fixture
def answering_url():
    """A real HTTP server on loopback that answers every request 404."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_only_servers_are_asked():
    for uri in (None, "", "sqlite:///tmp/mlflow.db", "databricks", "file:///tmp/mlruns"):
        assert unreachable(uri) is None, uri


def test_a_server_that_answers_is_reachable_whatever_it_answers(answering_url):
    assert unreachable(answering_url) is None
    assert unreachable(f"{answering_url}/no/such/page") is None


def test_a_refusing_port_is_unreachable_at_once():
    port = refusing_port()
    started = time.monotonic()
    problem = unreachable(f"http://127.0.0.1:{port}")
    assert problem is not None and problem.startswith(f"http://127.0.0.1:{port} cannot be reached ("), problem
    assert time.monotonic() - started < 2


def test_a_silent_server_is_unreachable_after_the_timeout():
    with silent_server() as port:
        started = time.monotonic()
        problem = unreachable(f"http://127.0.0.1:{port}", timeout=0.5)
        elapsed = time.monotonic() - started
    assert problem == f"http://127.0.0.1:{port} did not answer within 0.5 s"
    assert 0.4 < elapsed < 3, elapsed


def test_the_wandb_server_is_asked_only_online(monkeypatch):
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_server() == "https://api.wandb.ai"
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:8080")
    assert wandb_server() == "http://127.0.0.1:8080"
    for mode in ("offline", "disabled"):
        monkeypatch.setenv("WANDB_MODE", mode)
        assert wandb_server() is None


def _warnings(capfd, what: str) -> list[str]:
    return [line for line in capfd.readouterr().err.splitlines() if f"{what} stopped logging" in line]


@pytest.mark.parametrize("kind", ["refuses", "never answers"])
def test_mlflow_checks_its_server_as_the_search_starts(kind, capfd):
    """Tune's setup of the callback (a new search's or a resumed one's) asks the server;
    an unreachable one is the one warning, and no trial start waits on MLflow after it."""
    pytest.importorskip("mlflow")
    from ray.tune.experiment import Trial

    from collatz_ray.search.ray.mlflow_tracker import mlflow_callback

    with silent_server() as silent:
        port = refusing_port() if kind == "refuses" else silent
        callback = mlflow_callback(Tracker("mlflow", f"http://127.0.0.1:{port}"), experiment="reach")
        started = time.monotonic()
        callback.setup()
        elapsed = time.monotonic() - started
        (line,) = _warnings(capfd, "MLflow")  # before any trial started
        trial = Trial("collatz_trial", config={"lookahead": 5}, trial_id="abc12345", stub=True)
        callback.log_trial_start(trial)
        callback.log_trial_result(1, trial, {"epoch": 20, "objective": 1.5})
        callback.log_trial_end(trial)
        assert time.monotonic() - started - elapsed < 1  # no trial waited on MLflow
    assert f"(http://127.0.0.1:{port} " in line, line
    assert elapsed < 10, elapsed
    assert not _warnings(capfd, "MLflow")


def test_wandb_online_checks_its_server_as_the_search_starts(monkeypatch, tmp_path, capfd):
    """Online W&B with an unreachable WANDB_BASE_URL: one warning at setup, and no
    logging actor is ever started for a trial (it would wait in wandb.init)."""
    pytest.importorskip("wandb")
    from ray.tune.experiment import Trial

    from collatz_ray.search.ray.wandb_tracker import EpochWandb

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{refusing_port()}")
    callback = EpochWandb(project="reach", in_experiment=False)
    callback.setup()
    (line,) = _warnings(capfd, "W&B")
    assert "cannot be reached" in line, line
    trial = Trial("collatz_trial", config={"lookahead": 5}, trial_id="abc12345", stub=True)
    callback.log_trial_start(trial)  # Ray would start the trial's actor here: no Ray runs in this test
    callback.log_trial_end(trial)
    assert not _warnings(capfd, "W&B")
    assert not callback._trial_logging_actors
