"""Reading a Ray Tune experiment directory with json and pandas, without Ray.

Ray keeps everything a summary needs in plain files (see docs/ray-notes.md, "Experiments on
disk"): one JSON line per report in each trial's result.json, the sampled parameters in
params.json, trial statuses in experiment_state-*.json; the search adds the trainer's full
config (train_config.json), the search's budget (collatz_search.json) and the counterexample
bank (counterexamples.jsonl). Reading the files directly works while a search is still
running, after it was killed, and on a laptop that never joined the cluster. The price is
files caught mid-write: a half-written last line or a state file being replaced is skipped
with a note, never an error. So is a report whose values the summaries cannot use (an epoch
that is a list, a string or null; a count that is not an integer): a damaged file costs that
report, not the summary.

Every file is read through collatz_ray._bounded: only regular files inside the
experiment (a FIFO, a device or a link out of it is a note), each kind up to a size
(MAX_JSON_BYTES, MAX_STATE_BYTES; result.json is read a line at a time, its last
MAX_RESULT_BYTES when it is larger, with a note) and JSON nested no deeper than the
package writes it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from collatz_ray._bounded import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_STATE_BYTES,
    Unreadable,
    lines,
    loads,
    open_regular,
    read_json,
    skip_to_tail,
)
from collatz_ray.errors import UsageError, shown
from collatz_ray.search.failures import error_line
from collatz_ray.search.settings import SETTINGS_FILE, TRAIN_DIR, TRIAL_CONFIG_FILE, TRIAL_PREFIX
from collatz_ray.search.spaces import asha_rungs
from collatz_ray.trainer import metrics as registry
from collatz_ray.trainer.bank import BANK_FILE, Bank, read_bank
from collatz_ray.trainer.metrics import is_count, is_number

STATE_GLOB = "experiment_state-*.json"
#: A trial's result.json: 100000 epochs evaluated every 100 report some 5 MB. Of a
#: larger one the last MAX_RESULT_BYTES are read: the newest reports are what a summary shows.
MAX_RESULT_BYTES = 64 * 2**20
#: One report: a few kilobytes, the violation steps of every held-out seed included.
MAX_REPORT_LINE = 2**20
#: Of error.txt (Ray appends a traceback per failure) the end is read: the last failure.
MAX_ERROR_BYTES = 2**20
#: Keys Tune adds to every report; the rest are the trainer's metrics.
TUNE_KEYS = frozenset(
    {
        "timestamp",
        "checkpoint_dir_name",
        "checkpoint_path",
        "done",
        "training_iteration",
        "trial_id",
        "date",
        "time_this_iter_s",
        "time_total_s",
        "pid",
        "hostname",
        "node_ip",
        "config",
        "time_since_restore",
        "iterations_since_restore",
    }
)


def trainer_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """A report without Tune's bookkeeping: what the trainer itself reported."""
    return {k: v for k, v in report.items() if k not in TUNE_KEYS}


@dataclass(frozen=True)
class ExperimentBudget:
    """The epoch budget and ASHA settings an experiment records (None where unknown)."""

    epochs: int | None = None
    eval_interval: int | None = None
    grace_epochs: int | None = None
    reduction_factor: int | None = None

    def rungs(self) -> list[int]:
        return asha_rungs(
            epochs=self.epochs, grace_epochs=self.grace_epochs, reduction_factor=self.reduction_factor
        )


@dataclass(frozen=True)
class Parameter:
    """A searched setting: categorical (any values) or numeric, possibly log-scaled."""

    name: str
    numeric: bool
    log: bool = False


@dataclass(frozen=True)
class Ending:
    """How a trial ended: kind is completed, stopped, errored, running or pending."""

    kind: str
    text: str


@dataclass
class Trial:
    trial_id: str
    path: Path | None
    params: dict[str, Any]
    config: dict[str, Any] | None
    #: One dict per report, by epoch, the last report of an epoch winning (a restored
    #: trial redoes the reports made after Tune's last snapshot).
    reports: list[dict[str, Any]]
    status: str
    error: str | None
    ending: Ending = Ending("pending", "pending")
    #: The last failure a trial that then finished was restarted after (Tune keeps its
    #: error.txt): a killed process, a lost node.
    recovered_from: str | None = None

    @property
    def last(self) -> dict[str, Any]:
        return self.reports[-1] if self.reports else {}

    @property
    def epoch(self) -> int | None:
        return self.last.get("epoch")

    @property
    def metrics(self) -> dict[str, Any]:
        return trainer_metrics(self.last)

    def history(self) -> pd.DataFrame:
        return pd.DataFrame(self.reports)


@dataclass
class Experiment:
    path: Path
    settings: dict[str, Any]
    budget: ExperimentBudget
    parameters: list[Parameter]
    trials: list[Trial]
    #: When Tune last saved the trial statuses (the state file's mtime), if it did.
    state_time: float | None
    notes: list[str] = field(default_factory=list)
    #: The counterexample bank, when the experiment has one.
    bank: Bank | None = None

    @property
    def name(self) -> str:
        return self.path.name


# -- finding experiments ---------------------------------------------------------------
def _trial_dirs(path: Path) -> list[Path]:
    return sorted(
        d
        for d in path.iterdir()
        if d.is_dir()
        and d.name != TRAIN_DIR
        and ((d / "params.json").exists() or (d / "result.json").exists())
    )


def is_experiment(path: Path) -> bool:
    return path.is_dir() and (
        (path / SETTINGS_FILE).exists() or any(path.glob(STATE_GLOB)) or bool(_trial_dirs(path))
    )


def newest_experiment(root: Path) -> Path:
    """The experiment under `root` (the default ./results) whose search ran last: by the
    start of its newest driver session, which Tune writes into the name of its state
    file (experiment_state-<YYYY-MM-DD_HH-MM-SS>.json), never by a modification time,
    which reading an experiment changes (results writes summary.md into it)."""
    if not root.is_dir():
        raise UsageError(f"no experiment named and no {root}/ directory here; name an experiment directory")
    found = [d for d in root.iterdir() if is_experiment(d)]
    if not found:
        raise UsageError(f"no experiment under {root}/; name an experiment directory")
    return max(found, key=lambda d: (_last_session_start(d), d.name))


def _last_session_start(path: Path) -> str:
    """The newest driver session's start as Tune names its state file ("" for none)."""
    return max((f.name for f in path.glob(STATE_GLOB)), default="")


# -- reading ---------------------------------------------------------------------------
def load_experiment(path: Path) -> Experiment:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such directory")
    if not is_experiment(path):
        inside = [d.name for d in sorted(path.iterdir()) if is_experiment(d)] if path.is_dir() else []
        hint = f"; it holds experiments: {', '.join(inside[:5])}" if inside else ""
        raise UsageError(
            f"{path}: not a Ray Tune experiment (no trial folders, {STATE_GLOB} or {SETTINGS_FILE}){hint}"
        )
    notes: list[str] = []
    settings = _read_json(path / SETTINGS_FILE, notes, root=path) or {}
    states, state_time = _read_state(path, notes)
    trials = [_read_trial(d, states, notes) for d in _trial_dirs(path)]
    seen = {t.trial_id for t in trials}
    # Trials Tune created but has not started write no folder yet.
    trials += [
        Trial(trial_id, None, state.get("config") or {}, None, [], state["status"], None)
        for trial_id, state in states.items()
        if trial_id not in seen
    ]
    budget = _budget(settings, trials)
    for trial in trials:
        trial.ending = _ending(trial, budget)
    bank = read_bank(path, strict=False) if (path / BANK_FILE).exists() else None
    notes += bank.notes if bank is not None else []
    return Experiment(path, settings, budget, _parameters(settings, trials), trials, state_time, notes, bank)


def _read_json(
    path: Path, notes: list[str], *, root: Path, limit: int = MAX_JSON_BYTES
) -> dict[str, Any] | None:
    """A JSON object file of at most `limit` bytes inside `root`, or None (with a note
    unless it is simply absent)."""
    try:
        data = read_json(path, limit=limit, root=root)
    except FileNotFoundError:
        return None
    except Unreadable as err:
        notes.append(f"{err}; ignored")
        return None
    except json.JSONDecodeError:
        data = None
    except ValueError as err:  # nested too deep
        notes.append(f"{path}: {err}; ignored")
        return None
    except OSError:
        data = None
    if not isinstance(data, dict):
        notes.append(f"{path}: not a readable JSON object (being written?); ignored")
        return None
    return data


def _read_state(path: Path, notes: list[str]) -> tuple[dict[str, dict[str, Any]], float | None]:
    """Per trial id: status, folder name, config, from the newest experiment state.

    Tune rewrites the file every few seconds; a copy caught mid-write, or one in a format
    this code does not know, leaves the statuses to be inferred from the trial folders.
    A resumed search writes a file of its own; the newest is the one named after the
    latest start (as Tune picks it), not the latest written: the end of a run rewrites
    the older ones too, with the statuses they had.
    """
    files = sorted(path.glob(STATE_GLOB))
    if not files:
        return {}, None
    data = _read_json(files[-1], notes, root=path, limit=MAX_STATE_BYTES)
    if data is None:
        return {}, None
    states = {}
    try:
        for trial_json, _run_metadata in data["trial_data"]:
            trial = loads(trial_json)
            states[trial["trial_id"]] = {
                "status": trial["status"],
                "dir": trial.get("relative_logdir"),
                "config": trial.get("config"),
            }
    except (TypeError, KeyError, ValueError):
        notes.append(f"{files[-1]}: trial statuses not in the expected form; inferred instead")
        return {}, None
    return states, files[-1].stat().st_mtime


def _read_reports(path: Path, notes: list[str], *, root: Path) -> list[dict[str, Any]]:
    rows, skipped, oversized = [], [], []
    try:
        with open_regular(path, root=root) as handle:
            passed = skip_to_tail(handle, keep=MAX_RESULT_BYTES)
            if passed:
                notes.append(
                    f"{path}: larger than {MAX_RESULT_BYTES:,} bytes; read its last reports only "
                    f"(lines numbered from byte {passed:,})"
                )
            for line in lines(handle, max_line=MAX_REPORT_LINE, limit=MAX_RESULT_BYTES):
                if line.text is None:
                    oversized.append(line.number)
                    continue
                try:
                    row = loads(line.text) if line.text.strip() else None
                except json.JSONDecodeError:
                    skipped.append(line.number)
                except ValueError:  # nested too deep
                    oversized.append(line.number)
                else:
                    if isinstance(row, dict) and "epoch" in row:
                        rows.append((line.number, row))
    except FileNotFoundError:
        return []
    except Unreadable as err:
        notes.append(f"{err}; its reports are left out")
        return []
    except OSError as err:
        notes.append(f"{path}: cannot be read ({err.strerror or err}); its reports are left out")
        return []
    kept = []
    for number, row in rows:
        problem = _report_problem(row)
        if problem is None:
            kept.append(row)
        else:
            notes.append(f"{path}: line {number} skipped: {problem}")
    if skipped:
        notes.append(f"{path}: skipped half-written line {_numbers(skipped)}")
    if oversized:
        notes.append(
            f"{path}: skipped line {_numbers(oversized)}: longer than {MAX_REPORT_LINE:,} bytes "
            f"or nested deeper than {MAX_JSON_DEPTH} levels"
        )
    by_epoch = {row["epoch"]: row for row in kept}
    return [by_epoch[e] for e in sorted(by_epoch)]


def _numbers(lines: list[int]) -> str:
    return ", ".join(map(str, lines[:10])) + (f" and {len(lines) - 10} more" if len(lines) > 10 else "")


def _report_problem(row: dict[str, Any]) -> str | None:
    """Why a report cannot be summarised, if it cannot: its epoch is no count, a metric
    every report has is missing, or a declared metric (trainer/metrics.py) holds a value
    of the wrong kind."""
    if not is_count(row["epoch"]):
        return f"epoch is {shown(row['epoch'])}, not an integer >= 0"
    for required in (m.key for m in registry.declared() if m.required):
        if required not in row:
            return f"no {required}"
    for key, value in row.items():
        metric = registry.metric_of(key)
        problem = None if metric is None else metric.problem(value)
        if problem is not None:
            return f"{key} is {shown(value)}, {problem}"
    return None


def _read_trial(folder: Path, states: dict[str, dict[str, Any]], notes: list[str]) -> Trial:
    experiment = folder.parent
    reports = _read_reports(folder / "result.json", notes, root=experiment)
    trial_id = _trial_id(folder, states, reports)
    state = states.get(trial_id, {})
    params = _read_json(folder / "params.json", notes, root=experiment) or state.get("config") or {}
    error = _read_error(folder / "error.txt", notes, root=experiment)
    trial = Trial(
        trial_id,
        folder,
        params,
        _read_json(folder / TRIAL_CONFIG_FILE, notes, root=experiment),
        reports,
        state.get("status") or "",
        error,
    )
    trial.status = _status(trial)
    if trial.status == "TERMINATED" and trial.error is not None:
        trial.recovered_from, trial.error = trial.error, None
    return trial


def _read_error(path: Path, notes: list[str], *, root: Path) -> str | None:
    """The reason in a trial's error.txt (its last MAX_ERROR_BYTES), None without one."""
    try:
        with open_regular(path, root=root) as handle:
            skip_to_tail(handle, keep=MAX_ERROR_BYTES)
            text = handle.read(MAX_ERROR_BYTES).decode(errors="replace")
    except FileNotFoundError:
        return None
    except Unreadable as err:
        notes.append(f"{err}; the trial's error reason is left out")
        return "(error.txt not read)"
    except OSError as err:
        return f"(error.txt cannot be read: {err.strerror or err})"
    return error_line(text)


def _trial_id(folder: Path, states: dict[str, dict[str, Any]], reports: list[dict[str, Any]]) -> str:
    for trial_id, state in states.items():
        if state["dir"] == folder.name:
            return trial_id
    if reports and reports[-1].get("trial_id"):
        return str(reports[-1]["trial_id"])
    # collatz_trial_<id>, or Ray's long form collatz_trial_<id>_<n>_<params>_<date>
    return folder.name.removeprefix(TRIAL_PREFIX).split("_")[0]


def _status(trial: Trial) -> str:
    """Tune's status word; inferred from the files when the state has none for it.

    A report marked done settles it: the state file may be older than the last report.
    """
    if trial.reports and trial.last.get("done") and trial.status in ("", "RUNNING"):
        return "TERMINATED"
    if trial.status:
        return trial.status
    if trial.error is not None:
        return "ERROR"
    return "RUNNING" if trial.reports else "PENDING"


def _budget(settings: dict[str, Any], trials: list[Trial]) -> ExperimentBudget:
    saved = settings.get("budget") or {}
    # Without collatz_search.json, the trials' own epoch setting is the budget.
    epochs = saved.get("epochs") or max((t.config.get("epochs", 0) for t in trials if t.config), default=None)
    return ExperimentBudget(
        epochs or None, saved.get("eval_interval"), saved.get("grace_epochs"), saved.get("reduction_factor")
    )


def _ending(trial: Trial, budget: ExperimentBudget) -> Ending:
    epoch = trial.epoch
    if trial.status == "ERROR":
        where = f"at epoch {epoch}" if epoch is not None else "before its first report"
        return Ending("errored", f"errored {where}: {trial.error or 'no error.txt'}")
    if trial.status in ("RUNNING", "PENDING", "PAUSED"):
        kind = "pending" if trial.status == "PENDING" else "running"
        details = [] if epoch is None else [f"epoch {epoch}"]
        if trial.error is not None:  # Tune retries a failed trial and keeps its error.txt
            details.append("retrying after an error")
        return Ending(kind, f"{kind} ({', '.join(details)})" if details else kind)
    if epoch is None:
        return Ending("stopped", "ended without a report")
    if budget.epochs is None or epoch >= budget.epochs:
        return Ending("completed", "completed")
    passed = [r for r in budget.rungs() if r <= epoch]
    where = f"at rung {passed[-1]}" if passed else f"at epoch {epoch}"
    return Ending("stopped", f"stopped by ASHA {where}")


def _parameters(settings: dict[str, Any], trials: list[Trial]) -> list[Parameter]:
    """The searched settings in the space's order, with their kind from the space file
    when it can still be read, else guessed from the sampled values."""
    from_space = _space_parameters(settings.get("space_path"))
    names = list(from_space)
    for trial in trials:
        names += [n for n in trial.params if n not in names]
    return [from_space.get(n) or _guess_parameter(n, [t.params.get(n) for t in trials]) for n in names]


def _space_parameters(space_path: str | None) -> dict[str, Parameter]:
    from collatz_ray.search.spaces import load_space

    if not space_path:
        return {}
    try:
        space = load_space(space_path)
    except (UsageError, OSError):
        return {}  # moved or edited since: guess from the values instead
    return {
        p.name: Parameter(p.name, numeric=p.is_range, log=p.distribution == "log_uniform")
        for p in space.parameters
    }


def _guess_parameter(name: str, values: list[Any]) -> Parameter:
    present = [v for v in values if v is not None]
    numeric = bool(present) and all(is_number(v) and math.isfinite(v) for v in present)
    # A handful of distinct numbers (lookahead 10/20/100) reads best as categories.
    numeric = numeric and len(set(present)) > 4
    return Parameter(name, numeric=numeric, log=numeric and min(present) > 0)
