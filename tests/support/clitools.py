"""Commands called in this process through their `main([...])`, as a user's shell would
call them: exit status, stdout and stderr. Imports are paid once per test session; a
real subprocess per command is kept where the process itself matters."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

MODULES = {"results": "collatz_ray.results.__main__"}


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str

    def one_error_line(self, *fragments: str) -> str:
        """The single stderr line of a refused input (exit 2, no traceback)."""
        assert self.status == 2, (self.status, self.stdout[-2000:], self.stderr[-2000:])
        return one_line(self.stderr, *fragments)


def one_line(stderr: str, *fragments: str) -> str:
    """stderr's only line, with no traceback, holding each fragment."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip("\n").splitlines()
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def run_command(tool: str, *args: object) -> Outcome:
    module = importlib.import_module(MODULES.get(tool, f"collatz_ray.{tool}"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = module.main([str(a) for a in args])
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else 1
    return Outcome(int(status or 0), out.getvalue(), err.getvalue())


def installed_env(**extra: str) -> dict[str, str]:
    """The environment for commands of the installed wheel: no PYTHONPATH that would put
    a checkout before it."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **extra}


def tree_digest(root: Path) -> str:
    """One hash of every file's path and bytes under `root`: equal iff nothing changed."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def results_trials(experiment: Path) -> dict[str, dict]:
    """`collatz_ray.results EXPERIMENT --format json`, in this process: each trial's record
    by its short id (collatz_trial_ taken off)."""
    import json

    listing = run_command("results", experiment, "--format", "json")
    assert listing.status == 0, listing.stderr[-2000:]
    return {t["trial_id"].removeprefix("collatz_trial_"): t for t in json.loads(listing.stdout)["trials"]}
