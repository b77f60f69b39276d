"""Where a search's Optuna study lives (search/study.py), and the one-line refusals of a
database that cannot be used: checked against real SQLite files, before Ray."""

from __future__ import annotations

import sqlite3
import time

import optuna
import pytest
from support.clitools import run_command

from collatz_ray.errors import UsageError
from collatz_ray.search import study as study_module
from collatz_ray.search.study import (
    STUDY_FILE,
    StudyStorage,
    check_study,
    default_url,
    hide_password,
    open_storage,
    resolve_study,
)


def test_a_new_search_records_its_study_inside_the_experiment(tmp_path):
    s = resolve_study(given=None, saved=None, experiment_dir=str(tmp_path / "exp"), name="exp", remote=False)
    assert s == StudyStorage(
        url=f"sqlite:///{tmp_path / 'exp' / STUDY_FILE}", study_name="exp", in_experiment=True
    )
    assert s.to_json() == {"storage": None, "study_name": "exp"}


def test_a_resumed_search_uses_the_database_it_recorded(tmp_path):
    saved = {"study": {"storage": "sqlite:////data/studies.db", "study_name": "exp"}}
    s = resolve_study(given=None, saved=saved, experiment_dir=str(tmp_path), name="exp", remote=False)
    assert (s.url, s.in_experiment) == ("sqlite:////data/studies.db", False)
    with pytest.raises(UsageError, match="records its study in sqlite:////data/studies.db"):
        resolve_study(
            given="sqlite:////other.db", saved=saved, experiment_dir=str(tmp_path), name="exp", remote=False
        )


def test_an_experiment_from_before_studies_keeps_tunes_own_state(tmp_path):
    assert (
        resolve_study(given=None, saved={"seed": 0}, experiment_dir=str(tmp_path), name="old", remote=False)
        is None
    )
    with pytest.raises(UsageError, match="started before studies were recorded"):
        resolve_study(
            given="sqlite:////x.db", saved={"seed": 0}, experiment_dir=str(tmp_path), name="old", remote=False
        )


def test_passwords_are_never_saved_and_a_resume_asks_for_them(tmp_path):
    url = "postgresql://alice:s3cret@db.example:5432/studies"
    s = resolve_study(given=url, saved=None, experiment_dir=str(tmp_path), name="exp", remote=False)
    assert "s3cret" not in str(s.to_json()) and "s3cret" not in s.shown
    assert hide_password(url) == "postgresql://alice:***@db.example:5432/studies"
    with pytest.raises(UsageError, match="passwords are not saved"):
        resolve_study(
            given=None, saved={"study": s.to_json()}, experiment_dir=str(tmp_path), name="exp", remote=False
        )
    again = resolve_study(
        given=url, saved={"study": s.to_json()}, experiment_dir=str(tmp_path), name="exp", remote=False
    )
    assert again.url == url


@pytest.mark.parametrize(
    "saved, fragment",
    [
        ({"study": "sqlite:///x"}, "study: expected a mapping"),
        ({"study": {"storage": 7}}, "study.storage: expected a URL or null"),
        ({"study": {"storage": None, "study_name": ""}}, "study.study_name: expected a name"),
    ],
)
def test_a_damaged_study_record_is_one_line(tmp_path, saved, fragment):
    with pytest.raises(UsageError, match=fragment.replace(".", r"\.")):
        resolve_study(given=None, saved=saved, experiment_dir=str(tmp_path), name="exp", remote=False)


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("not a url", "cannot open the study database"),
        ("nosuchdialect://host/db", "cannot open the study database"),
        ("postgresql+pg8000://u@127.0.0.1:1/db", "database driver is not installed"),
        ("sqlite:////nonexistent-dir/sub/x.db", "unable to open database file"),
    ],
)
def test_a_database_that_cannot_be_opened_is_one_line(url, fragment):
    with pytest.raises(UsageError) as caught:
        open_storage(url)
    message = str(caught.value)
    assert fragment in message and "\n" not in message, message


def test_an_unreachable_server_is_one_line_not_a_hang():
    started = time.monotonic()
    with pytest.raises(UsageError, match="cannot open the study database"):
        open_storage("postgresql://nobody@127.0.0.1:1/none")
    assert time.monotonic() - started < study_module.CONNECT_TIMEOUT_S + 5


def test_a_locked_database_is_one_line_after_the_wait(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    optuna.create_study(storage=url, study_name="other")
    holder = sqlite3.connect(tmp_path / "locked.db")
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(study_module, "LOCK_WAIT_S", 1)
    try:
        with pytest.raises(UsageError, match="database is locked"):
            check_study(StudyStorage(url=url, study_name="mine"), resuming=False)
    finally:
        holder.rollback()
        holder.close()
    check_study(StudyStorage(url=url, study_name="mine"), resuming=False)  # free again: fine


def test_a_new_search_does_not_join_someone_elses_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(storage=url, study_name="taken")
    with pytest.raises(UsageError, match="already holds a study named 'taken'"):
        check_study(StudyStorage(url=url, study_name="taken"), resuming=False)
    with pytest.raises(UsageError, match="no study named 'absent'"):
        check_study(StudyStorage(url=url, study_name="absent"), resuming=True)
    check_study(StudyStorage(url=url, study_name="taken"), resuming=True)


def test_the_tune_command_refuses_a_bad_database_before_ray(tmp_path):
    outcome = run_command(
        "tune",
        "--space",
        "smoke",
        "--storage",
        str(tmp_path / "r"),
        "--name",
        "x",
        "--optuna-storage",
        "sqlite:////nonexistent-dir/sub/x.db",
    )
    outcome.one_error_line("--optuna-storage", "cannot open the study database")
    assert not (tmp_path / "r" / "x").exists() or not any((tmp_path / "r" / "x").iterdir())


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--extend", "exp"], "give --num-samples"),
        (["--extend", "exp", "--num-samples", "2", "--resume"], "drop --resume and --name"),
        (["--extend", "exp", "--num-samples", "2", "--epochs", "50"], "--epochs cannot change"),
        (["--extend", "nothere", "--num-samples", "2"], "--extend nothere: no experiment"),
        (["--optuna-storage", " "], "expected an SQLAlchemy URL"),
    ],
)
def test_extend_and_storage_flags_are_checked(tmp_path, flags, fragment):
    args = ["--storage", str(tmp_path / "r")] + (["--space", "smoke"] if "--extend" not in flags else [])
    run_command("tune", *args, *flags).one_error_line(fragment)


def test_default_url_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_url("rel/exp") == f"sqlite:///{tmp_path / 'rel' / 'exp' / STUDY_FILE}"
