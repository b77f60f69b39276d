"""Ray's files kept out of the user's Ray directory, and the check that they were.

Ray keeps a node's sockets, logs and session folder under `<temp>/ray` (`<temp>`:
$RAY_TMPDIR, else $TMPDIR, else /tmp), and `ray start --head` writes the address of
"the current cluster" there (`ray_current_cluster`), which a plain `ray.init()` joins.
The tests point every Ray they start (embedded searches, `ray start` nodes, in-process
`ray.init`) at a directory of their own through $RAY_TMPDIR, removed after the session;
the session ends by checking that the user's Ray directory is as it found it and that a
plain `ray.init()` there still starts a local Ray (docs/ray-notes.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

#: Symbolic links that every new local Ray points at its session (none of them a folder).
_LATEST_LINKS = ("session_latest", "prom_metrics_service_discovery.json")
_CURRENT_CLUSTER = "ray_current_cluster"


def ray_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The Ray directory a process with environment `env` uses (Ray's own rule)."""
    if "RAY_TMPDIR" in env:
        base = env["RAY_TMPDIR"]
    elif "TMPDIR" in env and sys.platform.startswith("linux"):
        base = env["TMPDIR"]
    else:
        base = "/tmp"
    return Path(base) / "ray"


def private_ray_tmpdir() -> str:
    """A new directory for the tests' Rays, directly under /tmp: Ray's Unix sockets live
    under it, and a socket's path may not exceed 107 characters."""
    return tempfile.mkdtemp(prefix="cr-", dir="/tmp")


def snapshot(directory: Path) -> dict[str, str | None]:
    """What the check compares: each entry's name (with a link's target), and the
    address of the current cluster. {} for a directory that does not exist."""
    if not directory.is_dir():
        return {}
    state: dict[str, str | None] = {}
    for entry in directory.iterdir():
        state[entry.name] = os.readlink(entry) if entry.is_symlink() else None
    try:
        state[f"{_CURRENT_CLUSTER} (content)"] = (directory / _CURRENT_CLUSTER).read_text()
    except OSError:
        pass
    return state


def changes(before: dict[str, str | None], after: dict[str, str | None]) -> list[str]:
    """One line for each way `after` differs from `before`."""
    lines = [f"new: {name}" for name in sorted(after.keys() - before.keys())]
    lines += [f"gone: {name}" for name in sorted(before.keys() - after.keys())]
    lines += [
        f"changed: {name} ({before[name]!r} -> {after[name]!r})"
        for name in sorted(before.keys() & after.keys())
        if before[name] != after[name]
    ]
    return lines


def plain_ray_init_problem(env: Mapping[str, str], *, timeout: float = 120) -> str | None:
    """Run `ray.init()` with no address, as a user's script would, in a fresh process with
    environment `env`; None if it started (or, where the user runs one, joined) a Ray,
    else why not. What it adds to the Ray directory is taken away again: its session
    folder (named after its pid), and the links it pointed there, put back as they were."""
    directory = ray_dir(env)
    existed = directory.is_dir()
    before = snapshot(directory)
    code = "import ray\nray.init(logging_level='ERROR', include_dashboard=False)\nray.shutdown()\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tempfile.gettempdir(),
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return f"a plain ray.init() did not return within {timeout:.0f} s"
    finally:
        _take_back(directory, before, existed=existed, pid=proc.pid)
    if proc.returncode != 0:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        return f"a plain ray.init() failed: {lines[-1] if lines else f'exit status {proc.returncode}'}"
    return None


def _take_back(directory: Path, before: dict[str, str | None], *, existed: bool, pid: int) -> None:
    """Undo what the Ray of process `pid` added to `directory`, and nothing else."""
    if not directory.is_dir():
        return
    ours = [session for session in directory.glob(f"session_*_{pid}") if not session.is_symlink()]
    for name in _LATEST_LINKS:
        link = directory / name
        if not link.is_symlink() or not any(os.readlink(link).startswith(str(s)) for s in ours):
            continue  # not pointed at our session: someone else's
        if before.get(name) is None:
            link.unlink()
        else:
            fresh = directory / f".{name}.{pid}"
            fresh.symlink_to(before[name])
            os.replace(fresh, link)
    for session in ours:
        shutil.rmtree(session, ignore_errors=True)
    if not existed and not any(directory.iterdir()):
        directory.rmdir()
