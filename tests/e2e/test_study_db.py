"""The Optuna study of real searches, in the databases users give: the default SQLite
file inside the experiment, and a PostgreSQL server this test starts itself. A search
that is extended goes on in the same study; every Tune trial is one Optuna trial, with
its intermediate values keyed by epoch, and none is left running."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support import postgres
from support.clitools import results_trials, run_command, tree_digest
from support.searches import TUNE, Search, read_reports, trial_dirs, wait_for, write_space

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

        assert len(results_trials(experiment)) == 3

        # A second search may not take the same study by mistake.
        clash = subprocess.run(
            [
                *TUNE,
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


# -- a study database that is not the experiment's own is refused, and can be rebuilt -----------
def smoke_copy(smoke_experiment, tmp_path) -> Path:
    return Path(shutil.copytree(smoke_experiment, tmp_path / "store" / smoke_experiment.name))


def another_experiments_study(path: Path) -> None:
    """A valid study database of another experiment, with a finished trial."""
    other = optuna.create_study(study_name="another", storage=f"sqlite:///{path}")
    other.optimize(lambda trial: trial.suggest_float("lr", 1e-4, 1e-2), n_trials=1)


def stranger_trials(path: Path) -> None:
    """This experiment's study name, holding a finished trial no Tune trial of it ran."""
    study = optuna.create_study(study_name="smoke", storage=f"sqlite:///{path}")
    study.optimize(lambda trial: trial.suggest_float("lr", 1e-4, 1e-2), n_trials=1)


def another_schema(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE studies (id INTEGER, note TEXT)")
        db.commit()


DAMAGE = {
    "truncated": (lambda path: path.write_bytes(b""), "empty (0 bytes)"),
    "garbage": (lambda path: path.write_bytes(os.urandom(4096)), "not an SQLite database"),
    "another experiment's": (another_experiments_study, "holds the study 'another', not this experiment's"),
    "stranger trials": (stranger_trials, "finished trial(s) that are not this experiment's"),
    "another schema": (another_schema, "not an Optuna study database"),
    "missing": (lambda path: None, "missing, although"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("command", ["--extend", "--resume"])
def test_a_study_database_not_the_experiments_own_is_refused_and_nothing_written(
    smoke_experiment, tmp_path, damage, command
):
    """Refused before Ray starts, in one line naming the file and how to rebuild it, and
    every file of the experiment (the damaged database included) stays as it was. The
    smoke experiment is finished: its --resume checks too."""
    experiment = smoke_copy(smoke_experiment, tmp_path)
    study_file = experiment / "optuna.db"
    study_file.unlink()
    make, fragment = DAMAGE[damage]
    make(study_file)
    before = tree_digest(experiment)
    flags = (
        ["--extend", "smoke", "--num-samples", "3"]
        if command == "--extend"
        else ["--resume", "--name", "smoke"]
    )
    outcome = run_command("tune", *flags, "--storage", experiment.parent)
    outcome.one_error_line(
        str(study_file),
        fragment,
        f"python -m collatz_ray.tune --rebuild-study smoke --storage {experiment.parent}",
    )
    assert tree_digest(experiment) == before


def test_a_refused_extension_leaves_every_file_as_it_was(smoke_experiment, tmp_path):
    """Refused on Ray, after the settings were read and the study checked: the new total
    of trials is not recorded (a later --resume would plan another search)."""
    experiment = smoke_copy(smoke_experiment, tmp_path)
    for state in experiment.glob("search_gen_state-*.json"):
        state.unlink()
    before = tree_digest(experiment)
    proc = subprocess.run(
        [*TUNE, "--extend", "smoke", "--num-samples", "3", "--storage", str(experiment.parent)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RAY_ADDRESS": "local"},
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "holds no search state" in proc.stderr.strip().splitlines()[-1], proc.stderr[-3000:]
    assert tree_digest(experiment) == before


def test_a_rebuilt_study_replays_the_trials_and_the_search_extends_from_it(smoke_experiment, tmp_path):
    experiment = smoke_copy(smoke_experiment, tmp_path)
    settings = json.loads((experiment / "collatz_search.json").read_text())
    max_epochs = settings["budget"]["epochs"]
    url = f"sqlite:///{experiment / 'optuna.db'}"
    original = study_trials(url, "smoke")
    (experiment / "optuna.db").unlink()
    another_experiments_study(experiment / "optuna.db")
    foreign = (experiment / "optuna.db").read_bytes()

    rebuilt = run_command("tune", "--rebuild-study", "smoke", "--storage", experiment.parent)
    assert rebuilt.status == 0, rebuilt.stderr
    (aside,) = experiment.glob("optuna.db.damaged-*")
    assert aside.read_bytes() == foreign  # moved aside, never deleted
    trials = assert_study_matches_experiment(url, "smoke", experiment, max_epochs=max_epochs)
    assert {tid: (t.state, t.params) for tid, t in trials.items()} == {
        tid: (t.state, t.params) for tid, t in original.items()
    }

    more = Search(
        tmp_path, "extend", "--extend", "smoke", "--num-samples", "1", "--storage", str(experiment.parent)
    )
    try:
        assert more.wait(timeout=400) == 0, more.stderr()[-3000:]
    finally:
        more.cleanup()
    trials = assert_study_matches_experiment(url, "smoke", experiment, max_epochs=max_epochs)
    assert len(trials) == len(original) + 1
    assert sorted(t.number for t in trials.values()) == list(range(len(original) + 1))
    assert (
        json.loads((experiment / "collatz_search.json").read_text())["budget"]["num_samples"]
        == len(original) + 1
    )
