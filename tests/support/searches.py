"""Real `python -m collatz_ray.tune` searches run as subprocesses, with every process of
their Ray sessions followed so that faults can be injected from outside (a SIGKILLed
worker or driver) and nothing is left behind. Never `ray stop`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import yaml

from support.raytmp import ray_dir

REPO = Path(__file__).resolve().parents[2]
SMOKE_SPACE = REPO / "search_spaces" / "smoke.yaml"
TUNE = [sys.executable, "-m", "collatz_ray.tune"]
REPLICATE = [sys.executable, "-m", "collatz_ray.replicate"]
MARK = "COLLATZ_RELIABILITY_SEARCH"
#: In the process title of a Tune trial actor, the process that trains (Ray Train's local mode).
TRIAL_TITLE = "ImplicitFunc"


def wait_for(predicate, *, timeout: float, what: str, every: float = 0.5, alive=None):
    """Poll until predicate() is truthy; fail after `timeout` s, or as soon as the search
    `alive` (a Search) has exited, naming what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if alive is not None and not alive.running():
            raise AssertionError(
                f"the search exited (status {alive.proc.returncode}) before {what}\n{alive.stderr()[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# -- the processes of one Ray session --------------------------------------------------------
def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, start time in clock ticks, command line) from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        table[int(entry.name)] = (
            int(fields[1]),
            int(fields[19]),
            cmdline.replace(b"\0", b" ").decode(errors="replace").strip(),
        )
    return table


def _has_marker(pid: int, needle: bytes) -> bool:
    try:
        return needle in (b"\0" + Path(f"/proc/{pid}/environ").read_bytes())
    except OSError:
        return False


class SessionProcesses:
    """Every process of the Ray session one search driver starts.

    Ray's processes are the driver's descendants while it lives; a SIGKILLed driver's
    orphans are reparented, so the tree is polled in the background and remembered
    (pid + start time, so a reused pid is never mistaken for ours). Processes that kept
    the driver's environment (Ray's setproctitle rewrites it in some) are found by the
    marker as well."""

    def __init__(self, root: int, marker: str) -> None:
        self.root = root
        self.needle = f"\0{MARK}={marker}\0".encode()
        self.known: dict[int, int] = {}  # pid -> start time
        self.titles: dict[int, set[str]] = {}  # pid -> command lines seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(0.5)

    def poll(self) -> dict[int, tuple[int, int, str]]:
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        with self._lock:
            if not self.known and self.root in table:
                self.known[self.root] = table[self.root][1]
            # Descendants of our live processes are ours (Ray's children, workers).
            stack = [pid for pid, start in self.known.items() if pid in table and table[pid][1] == start]
            found = set()
            while stack:
                pid = stack.pop()
                if pid not in found:
                    found.add(pid)
                    stack.extend(children.get(pid, ()))
            # So is any process that still carries the driver's environment marker.
            found.update(
                pid
                for pid in table
                if pid not in found and pid not in self.known and _has_marker(pid, self.needle)
            )
            for pid in found:
                self.known[pid] = table[pid][1]
                if table[pid][2]:
                    self.titles.setdefault(pid, set()).add(table[pid][2])
        return table

    def alive(self) -> dict[int, str]:
        """Our live processes: pid -> command line."""
        table = self.poll()
        with self._lock:
            return {
                pid: table[pid][2]
                for pid, start in self.known.items()
                if pid in table and table[pid][1] == start
            }

    def with_title(self, text: str) -> set[int]:
        with self._lock:
            return {pid for pid, titles in self.titles.items() if any(text in t for t in titles)}

    def kill_all(self, grace: float = 3.0) -> list[str]:
        """SIGTERM, then SIGKILL, every live process of the session; returns the
        command lines of any that survived (should be none)."""
        for sig, pause in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0), (signal.SIGKILL, 3.0)):
            live = self.alive()
            if not live:
                break
            for pid in live:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(pause)
        self._stop.set()
        return list(self.alive().values())


class Search:
    """One `python -m collatz_ray.tune` (or `command`) subprocess and its Ray session."""

    def __init__(
        self,
        workdir: Path,
        label: str,
        *args: str,
        command: list[str] = TUNE,
        env: dict[str, str] | None = None,
    ) -> None:
        self.label = label
        self.marker = uuid.uuid4().hex
        self.out_path = workdir / f"{label}.stdout"
        self.err_path = workdir / f"{label}.stderr"
        self.started = time.monotonic()
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [*command, *args],
                stdout=out,
                stderr=err,
                cwd=workdir,
                env={**os.environ, **(env or {}), MARK: self.marker},
                start_new_session=True,
            )
        self.session = SessionProcesses(self.proc.pid, self.marker)

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.cleanup()
            raise AssertionError(
                f"{self.label}: the search did not end within {timeout:.0f} s\n{self.stderr()[-3000:]}"
            ) from None

    def sigkill_driver(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def cleanup(self) -> list[str]:
        if self.running():
            self.proc.kill()
            self.proc.wait(timeout=30)
        return self.session.kill_all()

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def ray_session_dirs(self) -> list[Path]:
        """Ray names a local session after the pid of the driver that started it."""
        return sorted(ray_dir().glob(f"session_*_{self.proc.pid}"))


# -- spaces and experiments on disk ------------------------------------------------------------
def write_space(path: Path, *, budget: dict, parameters: dict, fixed: dict | None = None) -> Path:
    """A space file based on search_spaces/smoke.yaml (its tiny fixed model)."""
    smoke = yaml.safe_load(SMOKE_SPACE.read_text())
    data = {
        "description": f"reliability test space {path.stem}",
        "budget": {**smoke["budget"], **budget},
        "fixed": {**smoke["fixed"], **(fixed or {})},
        "parameters": parameters,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_reports(result_json: Path, *, partial_ok: bool = False) -> list[dict]:
    """A trial's reports (one JSON object a line). While a search runs the last line may
    be half written: partial_ok skips it; otherwise every line must parse."""
    try:
        lines = [line for line in result_json.read_text().splitlines() if line.strip()]
    except OSError:
        return []
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if partial_ok and i == len(lines) - 1:
                break
            raise
    return out


def trial_dirs(experiment: Path) -> dict[str, Path]:
    return {
        d.name.removeprefix("collatz_trial_"): d
        for d in sorted(experiment.glob("collatz_trial_*"))
        if d.is_dir()
    }


def epochs_by_trial(experiment: Path, *, partial_ok: bool = False) -> dict[str, list[int]]:
    return {
        tid: [r["epoch"] for r in read_reports(d / "result.json", partial_ok=partial_ok)]
        for tid, d in trial_dirs(experiment).items()
    }


def trial_states(experiment: Path) -> dict[str, str]:
    """trial id -> status, from the current experiment_state-*.json (the only place Ray
    keeps trial status); {} while there is none or it is being rewritten."""
    # One file per driver session, named after its start time; the newest name is the
    # current one (Ray picks it the same way; mtimes are useless, syncs rewrite them all).
    states = sorted(experiment.glob("experiment_state-*.json"))
    if not states:
        return {}
    try:
        data = json.loads(states[-1].read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    out = {}
    for trial_json, _runtime in data["trial_data"]:
        trial = json.loads(trial_json)
        out[trial["trial_id"]] = trial["status"]
    return out


def worker_reports(experiment: Path) -> dict[str, list[dict]]:
    """trial id -> the reports its trial process has made, as its newest checkpoint in
    storage carries them. The trial writes these as it reports; the experiment's
    result.json is Tune's copy, synced to storage from time to time (a whole tiny trial
    can appear there at once)."""
    from collatz_ray.search.ray.worker import REPORTS_FILE

    out = {}
    for tid, trial in trial_dirs(experiment).items():
        checkpoints = sorted(c for c in trial.glob("checkpoint_*") if c.is_dir())  # numbered in order
        if checkpoints:  # the newest may be half copied: its last line is then skipped
            lines = read_reports(checkpoints[-1] / REPORTS_FILE, partial_ok=True)
            out[tid] = [line for line in lines if "epoch" in line]  # after the search-run line
    return out


def freeze_a_trial_in_flight(
    search: Search,
    experiment: Path,
    *,
    epochs: int,
    after_a_finished_one: bool = False,
    reports_at_least: int = 0,
) -> tuple[str, int] | None:
    """SIGSTOP the process of a trial that has reported (a checkpoint is in storage) and
    not reached `epochs`, so that the search is surely still running while a test
    signals it, however fast the machine. (trial id, its pid), or None while there is no
    such trial, or while the trials have made fewer than `reports_at_least` reports in
    all. With `after_a_finished_one`, only once another trial is done. The frozen
    trial's newest report may not have reached the driver; SIGCONT ends the freeze, the
    session's SIGKILL reaps it."""
    everyone = worker_reports(experiment)
    if sum(map(len, everyone.values())) < reports_at_least:
        return None
    for tid, reports in everyone.items():
        if not reports or reports[-1]["epoch"] >= epochs:
            continue
        if after_a_finished_one and not any(
            r and r[-1]["epoch"] == epochs for t, r in everyone.items() if t != tid
        ):
            continue  # the first trial: it must be allowed to finish
        pid = reports[-1]["worker_pid"]
        if pid not in search.session.alive():
            continue  # its worker is gone: the trial is ending
        os.kill(pid, signal.SIGSTOP)
        now = worker_reports(experiment).get(tid) or []  # [] while a checkpoint is half copied
        if not now or now[-1]["epoch"] < epochs:
            return tid, pid
        os.kill(pid, signal.SIGCONT)  # it finished in between: try the next one
    return None


def assert_increasing(epochs: dict[str, list[int]]) -> None:
    for tid, seq in epochs.items():
        assert seq == sorted(set(seq)), f"trial {tid}: epochs repeat or go backwards: {seq}"
