"""Where a search's Optuna study lives, checked before Ray starts.

Every search records its study in a database: by default an SQLite file inside the
experiment (`optuna.db`, nothing to start), or any SQLAlchemy URL given with
`--optuna-storage` (PostgreSQL, MySQL, a shared SQLite file). The study is named after
the experiment. The database holds every trial TPE has seen, with its intermediate
values by epoch, so `optuna-dashboard`, `--extend` and the results' importances all read
the same record.

A password in a URL is never written to the experiment: the settings keep the URL with
the password hidden, and a resume asks for it again (or use ~/.pgpass / PGPASSWORD).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collatz_ray.errors import UsageError, shown

if TYPE_CHECKING:
    import optuna

#: The default study database, inside the experiment directory.
STUDY_FILE = "optuna.db"
#: How long a writer waits for another's lock (SQLite) or for a server to answer.
LOCK_WAIT_S = 30
CONNECT_TIMEOUT_S = 10
#: The user attribute linking an Optuna trial to its Tune trial (search/ray/searcher.py sets it).
TUNE_TRIAL_ATTR = "tune_trial_id"
#: What the settings hold instead of a password.
HIDDEN = "***"
#: The extra to install for a database's driver, by SQLAlchemy dialect.
_DRIVER_EXTRAS = {"postgresql": "postgres", "mysql": "mysql"}


@dataclasses.dataclass(frozen=True)
class StudyStorage:
    """A study's database: its URL (password included, never saved) and the name."""

    url: str
    study_name: str
    #: True for the default file inside the experiment (it moves with the experiment).
    in_experiment: bool = False

    @property
    def shown(self) -> str:
        """The URL as printed and saved: any password hidden."""
        return hide_password(self.url)

    def to_json(self) -> dict[str, Any]:
        return {"storage": None if self.in_experiment else self.shown, "study_name": self.study_name}


def default_url(experiment_dir: str | Path) -> str:
    return f"sqlite:///{Path(experiment_dir).resolve() / STUDY_FILE}"


def hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # not a URL SQLAlchemy reads: nothing it could take a password from
        return url
    return parsed.render_as_string(hide_password=True) if parsed.password else url


def resolve_study(
    *, given: str | None, saved: dict[str, Any] | None, experiment_dir: str, name: str, remote: bool
) -> StudyStorage | None:
    """The study database of a search: --optuna-storage, else what the experiment
    recorded, else the default file in the experiment. None for an experiment from
    before studies were recorded (its TPE state lives in Tune's own pickles)."""
    if saved is not None and "study" not in saved:
        if given:
            raise UsageError(
                f"--optuna-storage: experiment {name} was started before studies were "
                "recorded in a database; resume it without --optuna-storage"
            )
        return None
    record = (saved or {}).get("study") or {}
    if saved is not None and not isinstance(record, dict):
        raise UsageError(f"{experiment_dir}: collatz_search.json: study: expected a mapping")
    recorded = record.get("storage")
    if recorded is not None and not isinstance(recorded, str):
        raise UsageError(f"{experiment_dir}: collatz_search.json: study.storage: expected a URL or null")
    study_name = record.get("study_name", name)
    if not isinstance(study_name, str) or not study_name:
        raise UsageError(f"{experiment_dir}: collatz_search.json: study.study_name: expected a name")
    if given is not None:
        if not given.strip():
            raise UsageError(
                "--optuna-storage: expected an SQLAlchemy URL such as "
                "sqlite:///path/study.db or postgresql://user@host/db"
            )
        if saved is not None and hide_password(given) != (recorded or "(the experiment's own optuna.db)"):
            raise UsageError(
                f"--optuna-storage {hide_password(given)}: experiment {name} records its study "
                f"in {recorded or 'its own optuna.db'}; resume it with that database"
            )
        return StudyStorage(url=given, study_name=study_name)
    if recorded is not None:
        if HIDDEN in recorded:
            raise UsageError(
                f"experiment {name} records its study in {recorded}: pass that URL again "
                "with --optuna-storage (passwords are not saved), or use ~/.pgpass"
            )
        return StudyStorage(url=recorded, study_name=study_name)
    if remote:
        # An SQLite file cannot live in s3:// and the like: keep it on the driver's disk.
        local = Path.home() / ".cache" / "collatz-ray" / "studies"
        local.mkdir(parents=True, exist_ok=True)
        return StudyStorage(url=f"sqlite:///{local / (name + '.db')}", study_name=study_name)
    return StudyStorage(url=default_url(experiment_dir), study_name=study_name, in_experiment=True)


def engine_kwargs(url: str) -> dict[str, Any]:
    """Waits that turn a locked or unreachable database into an error, not a hang."""
    dialect = url.split(":", 1)[0].split("+", 1)[0].lower()
    if dialect == "sqlite":
        return {"connect_args": {"timeout": LOCK_WAIT_S}}
    if dialect in ("postgresql", "mysql"):
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    return {}


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage for `url`, or UsageError with one line saying why not."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url))
    except ImportError as err:
        dialect = url.split(":", 1)[0].split("+", 1)[0].lower()
        extra = _DRIVER_EXTRAS.get(dialect)
        hint = f"; pip install 'collatz-ray[{extra}]'" if extra else ""
        raise UsageError(
            f"--optuna-storage {hide_password(url)}: its database driver is not installed "
            f"({err.name or err}){hint}"
        ) from None
    except Exception as err:  # SQLAlchemy's and Optuna's errors: a bad URL, no server, a lock
        raise UsageError(
            f"--optuna-storage {hide_password(url)}: cannot open the study database ({_reason(err)})"
        ) from None


def check_study(
    storage: StudyStorage,
    *,
    resuming: bool,
    known_trials: Collection[str] | None = None,
    rebuild: str | None = None,
) -> None:
    """Open the database now, before Ray, and only read it: a new search must not join
    someone else's study, and a resumed one must find its own and nothing else.

    The experiment's own file must hold this experiment's study alone. Given the Tune
    trials the experiment knows of (`known_trials`), every finished trial of the study
    must be one of them: a study with other trials' results would steer TPE by them.
    Each refusal is one line naming the database and what is wrong, with `rebuild` (the
    command that rebuilds the study from the experiment's trials) where that helps."""
    import optuna
    from optuna.trial import TrialState

    where = _study_file(storage) if storage.in_experiment else f"--optuna-storage {storage.shown}"

    def refuse(problem: str) -> UsageError:
        hint = f"; the experiment's trials are untouched. Rebuild the study from them with: {rebuild}"
        return UsageError(f"{where}: {problem}{hint if rebuild else ''}")

    if storage.in_experiment:
        if not _sqlite_study_file(storage, refuse):
            if resuming and known_trials:
                raise refuse(f"missing, although {len(known_trials)} trial(s) ran")
            return  # the search creates it
    rdb = open_storage(storage.url)
    try:
        names = {s.study_name for s in optuna.study.get_all_study_summaries(rdb, include_best_trial=False)}
        foreign = sorted(names - {storage.study_name})
        if storage.in_experiment and foreign:
            raise refuse(
                f"holds the study {foreign[0]!r}, not this experiment's {storage.study_name!r} "
                "(another experiment's database?)"
            )
        if not resuming and storage.study_name in names:
            raise UsageError(
                f"{where}: it already holds a study named "
                f"{storage.study_name!r}; choose another --name, or --resume that experiment"
            )
        if resuming and storage.study_name not in names:
            if not storage.in_experiment:
                raise UsageError(
                    f"{where}: no study named {storage.study_name!r} there; "
                    "the experiment recorded its study in another database"
                )
            if known_trials:
                raise refuse(f"holds no study, although {len(known_trials)} trial(s) ran")
            return
        if not resuming or known_trials is None:
            return
        study = optuna.load_study(study_name=storage.study_name, storage=rdb)
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        strangers = [t for t in finished if t.user_attrs.get(TUNE_TRIAL_ATTR) not in known_trials]
        if strangers:
            raise refuse(
                f"its study holds {len(strangers)} finished trial(s) that are not this experiment's "
                f"(Optuna trial {strangers[0].number}: "
                f"{shown(str(strangers[0].user_attrs.get(TUNE_TRIAL_ATTR, 'no Tune trial')))}), "
                f"{len(finished)} finished in all for the {len(known_trials)} trial(s) the experiment knows of"
            )
    except UsageError:
        raise
    except Exception as err:
        raise refuse(f"cannot read its studies ({_reason(err)})") from None
    finally:
        rdb.remove_session()
        rdb.engine.dispose()


#: The tables an Optuna study database has (every schema since Optuna 2), checked before
#: Optuna opens a file: Optuna would add missing tables to whatever SQLite file it is given.
_STUDY_TABLES = frozenset({"studies", "trials", "trial_params", "trial_values", "version_info"})


def _study_file(storage: StudyStorage) -> Path:
    return Path(storage.url.removeprefix("sqlite:///"))


def _sqlite_study_file(storage: StudyStorage, refuse: Callable[[str], UsageError]) -> bool:
    """Whether the experiment's own study file exists; refused if it is not an Optuna
    database. Read through SQLite in read-only mode, so nothing is written to it."""
    import sqlite3

    path = _study_file(storage)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    except OSError as err:
        raise refuse(f"cannot be read ({err.strerror or err})") from None
    if size == 0:
        raise refuse("empty (0 bytes): truncated, not a study database")
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as err:
        raise refuse(f"not an SQLite database ({err})") from None
    missing = sorted(_STUDY_TABLES - tables)
    if missing:
        raise refuse(f"an SQLite file but not an Optuna study database (no table {', '.join(missing)})")
    return True


def _reason(err: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's trailing help link."""
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return line.split(" (Background on this error")[0][:200]
