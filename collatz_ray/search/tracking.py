"""Which experiment trackers a search logs to (`--track`), checked before Ray starts.

TensorBoard needs no flag: every search writes its event files into each trial folder
(search/ray/tracker_callbacks.py). MLflow and W&B are optional extras, each asked for with
`--track mlflow[=URI]` or `--track wandb`; a tracker whose package is missing, or that
could not log at all, is refused here in one line before anything heavy loads. The
choice is saved with the experiment, and `--resume` keeps it: Tune's saved state holds
the trackers a search started with.

A tracker's server is asked once, as the search starts, whether it answers
(unreachable): one that refuses or keeps silent is one warning and the search goes on
without it, instead of the driver waiting on its retries.

Plain data and environment variables only: no Ray, no tracker package imported (W&B's
login check aside, when W&B is asked for and not offline).
"""

from __future__ import annotations

import dataclasses
import http.client
import importlib.util
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collatz_ray.errors import UsageError, shown
from collatz_ray.search.storage import is_remote

KINDS = ("mlflow", "wandb")
#: What `pip install 'collatz-ray[EXTRA]'` brings for each tracker (pyproject.toml).
EXTRAS = {"mlflow": "mlflow", "wandb": "wandb"}
#: The file of the MLflow store a search keeps inside its experiment when no URI is given.
MLFLOW_DB = "mlflow.db"
#: W&B modes in which nothing is sent, so no API key is needed.
WANDB_LOCAL_MODES = ("offline", "disabled")
#: The W&B server an online search logs to unless $WANDB_BASE_URL names another.
WANDB_SERVER = "https://api.wandb.ai"
#: How long a tracker's server may take to answer the one request that checks it as the
#: search starts (per step: connecting, then the answer). Three seconds is ample for a
#: server that works, and keeps the warning about one that does not within seconds of
#: the search's start.
REACH_TIMEOUT_S = 3.0


@dataclasses.dataclass(frozen=True)
class Tracker:
    """One `--track` value: `kind` is mlflow or wandb; `uri` is MLflow's tracking URI
    when one was given (None: $MLFLOW_TRACKING_URI, else a store inside the experiment)."""

    kind: str
    uri: str | None = None

    def __str__(self) -> str:
        return self.kind if self.uri is None else f"{self.kind}={self.uri}"


def parse_tracker(text: str) -> Tracker:
    """A `--track` value (mlflow, mlflow=URI or wandb); UsageError names what was expected."""
    kind, equals, value = text.partition("=")
    if kind not in KINDS:
        raise UsageError(f"expected mlflow, mlflow=URI or wandb, got {shown(text)}")
    if kind == "wandb" and equals:
        raise UsageError(
            f"wandb takes no value, got {shown(text)} (the W&B project is the search's "
            "name, or $WANDB_PROJECT; WANDB_MODE=offline keeps runs on this machine)"
        )
    if equals and not value.strip():
        raise UsageError(
            f"expected a tracking URI after 'mlflow=', got {shown(text)} (plain "
            "--track mlflow keeps an MLflow store inside the experiment)"
        )
    return Tracker(kind, value.strip() if equals else None)


def chosen_trackers(
    given: Sequence[Tracker] | None,
    *,
    saved: dict[str, Any] | None,
    settings_file: Path,
    experiment: str,
    storage: str,
) -> tuple[Tracker, ...]:
    """The trackers a search logs to: `given` (the --track flags) for a new search; on
    --resume the experiment's own, which --track may repeat but not change. Each is
    checked: its package installed, somewhere to log to, W&B able to log in."""
    given = tuple(given or ())
    if saved is None:
        trackers = given
    else:
        trackers = _saved_trackers(saved, settings_file)
        if given and given != trackers:
            started = " ".join(f"--track {t}" for t in trackers) or "no --track"
            raise UsageError(
                f"--track {' '.join(map(str, given))}: experiment {experiment} was started with "
                f"{started}, which Tune's saved state keeps; drop --track to resume it"
            )
    kinds = [t.kind for t in trackers]
    for kind in KINDS:
        if kinds.count(kind) > 1:
            raise UsageError(
                f"--track {kind} is given {kinds.count(kind)} times: one {kind} tracker per search"
            )
    for tracker in trackers:
        _check(tracker, storage=storage)
    return trackers


def _saved_trackers(saved: dict[str, Any], settings_file: Path) -> tuple[Tracker, ...]:
    values = saved.get("track", [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise UsageError(f"{settings_file}: track: expected a list of --track values, got {shown(values)}")
    try:
        return tuple(parse_tracker(v) for v in values)
    except UsageError as err:
        raise UsageError(f"{settings_file}: track: {err}") from None


def _check(tracker: Tracker, *, storage: str) -> None:
    package = "mlflow" if tracker.kind == "mlflow" else "wandb"
    if importlib.util.find_spec(package) is None:
        raise UsageError(
            f"--track {tracker}: the {package} package is not installed; "
            f"pip install 'collatz-ray[{EXTRAS[tracker.kind]}]'"
        )
    if tracker.kind == "mlflow" and mlflow_uri(tracker) is None and is_remote(storage):
        raise UsageError(
            f"--track mlflow: the experiment is on {storage}, where no MLflow store can be "
            "kept; give --track mlflow=URI (a tracking server) or set MLFLOW_TRACKING_URI"
        )
    if tracker.kind == "wandb" and os.environ.get("WANDB_MODE") not in WANDB_LOCAL_MODES:
        _check_wandb_login()


def _check_wandb_login() -> None:
    """W&B online needs an API key; Ray would ask for it only once the search runs, with
    a traceback. The same places Ray looks: $WANDB_API_KEY, then a `wandb login`."""
    if os.environ.get("WANDB_API_KEY"):
        return
    import wandb

    try:  # verify=False: only whether a key is stored, nothing sent
        logged_in = wandb.login(prompt=False, verify=False)
    except Exception:  # noqa: BLE001 - a damaged W&B settings file is no login either
        logged_in = False
    if not logged_in:
        raise UsageError(
            "--track wandb: W&B has no API key; set WANDB_API_KEY, run `wandb login`, "
            "or set WANDB_MODE=offline to keep runs on this machine"
        )


def mlflow_uri(tracker: Tracker) -> str | None:
    """The MLflow tracking URI given (--track mlflow=URI, else $MLFLOW_TRACKING_URI), or
    None: a store inside the experiment (experiment_mlflow_uri)."""
    return tracker.uri or os.environ.get("MLFLOW_TRACKING_URI") or None


def experiment_mlflow_uri(experiment_dir: str | Path) -> str:
    """The MLflow store kept inside an experiment: an SQLite file (MLflow refuses new
    plain-file stores)."""
    return f"sqlite:///{Path(experiment_dir).resolve() / MLFLOW_DB}"


def describe(trackers: Sequence[Tracker], *, path: str) -> str:
    """One line for the plan: where this search's curves can be seen."""
    parts = [f"TensorBoard (tensorboard --logdir {path})"]
    for tracker in trackers:
        if tracker.kind == "mlflow":
            parts.append(f"MLflow {mlflow_uri(tracker) or experiment_mlflow_uri(path)}")
        else:
            mode = os.environ.get("WANDB_MODE") or "online"
            project = os.environ.get("WANDB_PROJECT") or Path(path).name
            parts.append(f"W&B project {project} ({mode})")
    return "Tracking: " + ", ".join(parts)


def wandb_server() -> str | None:
    """The W&B server this search would log to now: None offline (nothing is sent)."""
    if os.environ.get("WANDB_MODE") in WANDB_LOCAL_MODES:
        return None
    return os.environ.get("WANDB_BASE_URL") or WANDB_SERVER


def unreachable(uri: str | None, *, timeout: float = REACH_TIMEOUT_S) -> str | None:
    """Why the tracking server at `uri` cannot serve this search, or None when it answers
    (any HTTP status: it is there) or when `uri` names no server (a file, a database, a
    Databricks profile, which their own clients reach). One request, no retries: a port
    that refuses fails at once, one that accepts and never answers after `timeout`."""
    if not uri or not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(uri, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # an answer, if not a welcome one: the tracker's own calls say more
    except (OSError, ValueError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", None) or err
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return f"{uri} did not answer within {timeout:g} s"
        return f"{uri} cannot be reached ({reason})"
