"""The Optuna study of real searches, in the databases users give: the default SQLite
file inside the experiment, and a PostgreSQL server this test starts itself. A search
that is extended goes on in the same study; every Tune trial is one Optuna trial, with
its intermediate values keyed by epoch, and none is left running."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request

import optuna
import pytest
from optuna.trial import TrialState
from support import postgres
from support.searches import Search, read_reports, trial_dirs, wait_for, write_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def study_trials(url: str, name: str) -> dict[str, optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=url)
    return {t.user_attrs["tune_trial_id"]: t for t in study.trials}


def assert_study_matches_experiment(url: str, name: str, experiment, *, max_epochs: int) -> dict:
    """One finished Optuna trial per Tune trial, same parameters, values by epoch."""
    trials = study_trials(url, name)
    dirs = trial_dirs(experiment)
    assert set(trials) == set(dirs), (sorted(trials), sorted(dirs))
    for tid, trial in trials.items():
        params = json.loads((dirs[tid] / "params.json").read_text())
        assert trial.params == params, (tid, trial.params, params)
        reports = read_reports(dirs[tid] / "result.json")
        by_epoch = {r["epoch"]: r["objective"] for r in reports if r.get("epoch")}
        assert trial.intermediate_values == pytest.approx(by_epoch), tid
        last = max(by_epoch)
        expected = TrialState.COMPLETE if last == max_epochs else TrialState.PRUNED
        assert trial.state == expected, (tid, trial.state, last)
        assert trial.value == pytest.approx(by_epoch[last])
    return trials


def test_the_smoke_search_records_its_study_with_asha_stops_pruned(smoke_experiment):
    experiment = smoke_experiment
    settings = json.loads((experiment / "collatz_search.json").read_text())
    assert settings["study"] == {"storage": None, "study_name": experiment.name}
    trials = assert_study_matches_experiment(
        f"sqlite:///{experiment / 'optuna.db'}",
        experiment.name,
        experiment,
        max_epochs=settings["budget"]["epochs"],
    )
    assert any(t.state == TrialState.PRUNED for t in trials.values()), (
        "ASHA stopped no trial of the smoke search"
    )


def test_a_search_in_postgres_can_be_extended(tmp_path, eval_csv):
    reason = postgres.available()
    if reason:
        pytest.skip(reason)
    # ASHA's stops are the smoke search's test above.
    epochs = 100
    space = write_space(
        tmp_path / "pg.yaml",
        budget={
            "epochs": epochs,
            "eval_interval": 20,
            "grace_epochs": epochs,
            "reduction_factor": 2,
            "num_samples": 2,
        },
        parameters={
            "lookahead": {"values": [5, 10]},
            "lr": {"distribution": "log_uniform", "min": 1.0e-4, "max": 1.0e-2},
        },
    )
    storage, name = tmp_path / "results", "pg"
    experiment = storage / name
    with postgres.postgres_server() as url:
        first = Search(
            tmp_path,
            "first",
            "--space",
            str(space),
            "--storage",
            str(storage),
            "--name",
            name,
            "--eval-csv",
            str(eval_csv),
            "--optuna-storage",
            url,
            "--max-concurrent",
            "2",
        )
        try:
            check_the_dashboard_while_it_runs(first, url, name, tmp_path, epochs=epochs)
            assert first.wait(timeout=400) == 0, first.stderr()[-3000:]
        finally:
            first.cleanup()
        assert f"Optuna study: optuna-dashboard {url}" in first.stdout()
        assert len(assert_study_matches_experiment(url, name, experiment, max_epochs=epochs)) == 2

        # The database is recorded with the experiment: --extend needs no --optuna-storage.
        more = Search(tmp_path, "extend", "--extend", name, "--num-samples", "1", "--storage", str(storage))
        try:
            assert more.wait(timeout=400) == 0, more.stderr()[-3000:]
        finally:
            more.cleanup()
        trials = assert_study_matches_experiment(url, name, experiment, max_epochs=epochs)
        assert len(trials) == 3
        assert sorted(t.number for t in trials.values()) == [0, 1, 2]
        assert not (experiment / "optuna.db").exists()
        settings = json.loads((experiment / "collatz_search.json").read_text())
        assert settings["budget"]["num_samples"] == 3
        assert settings["study"] == {"storage": url, "study_name": name}

        listing = subprocess.run(
            [sys.executable, "-m", "collatz_ray.results", str(experiment), "--format", "json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert listing.returncode == 0, listing.stderr[-2000:]
        assert len(json.loads(listing.stdout)["trials"]) == 3

        # A second search may not take the same study by mistake.
        clash = subprocess.run(
            [
                sys.executable,
                "-m",
                "collatz_ray.tune",
                "--space",
                str(space),
                "--storage",
                str(tmp_path / "elsewhere"),
                "--name",
                name,
                "--optuna-storage",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert clash.returncode == 2 and "already holds a study named 'pg'" in clash.stderr, clash.stderr
        assert len(clash.stderr.strip().splitlines()) == 1, clash.stderr


def check_the_dashboard_while_it_runs(search: Search, url: str, name: str, tmp_path, *, epochs: int) -> None:
    """docs/search.md's `optuna-dashboard URL`, started while the search runs: its HTTP
    API serves the study's trials with their intermediate values by epoch. Once the
    study holds a report, the search's driver (the study's only writer) is frozen
    (SIGSTOP) until the check is done, so the search is surely running however fast
    the machine; its trials go on meanwhile."""
    dashboard = shutil.which("optuna-dashboard", path=os.path.dirname(sys.executable))
    assert dashboard, "optuna-dashboard is not installed (pip install 'collatz-ray[dashboard]')"

    storage = optuna.storages.RDBStorage(url)

    def freeze_the_driver_once_a_report_is_in():
        try:
            reported = any(
                t.intermediate_values for t in optuna.load_study(study_name=name, storage=storage).trials
            )
        except KeyError:  # the study is not made yet
            return False
        if reported:
            os.kill(search.proc.pid, signal.SIGSTOP)
        return reported

    wait_for(
        freeze_the_driver_once_a_report_is_in,
        timeout=300,
        every=0.1,
        alive=search,
        what="a report in the study",
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [dashboard, url, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "dashboard.log", "w"),
    )
    try:

        def api(path: str):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                    return json.loads(response.read())
            except OSError:
                return None

        studies = wait_for(lambda: api("/api/studies"), timeout=60, what="the dashboard's API")
        (study_id,) = [s["study_id"] for s in studies["study_summaries"] if s["study_name"] == name]
        detail = api(f"/api/studies/{study_id}?after=0")
        reported = [t for t in detail["trials"] if t["intermediate_values"]]
        assert reported, detail["trials"]
        steps = {v["step"] for t in reported for v in t["intermediate_values"]}
        assert steps and steps <= set(range(20, epochs + 1, 20)), steps  # epochs, not report indices
        assert search.running()
    finally:
        server.terminate()
        server.wait(timeout=30)
        os.kill(search.proc.pid, signal.SIGCONT)
