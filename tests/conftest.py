"""Shared fixtures, and the session's promise to leave the machine as it found it.

Every Ray the tests start (embedded searches, `ray start` nodes, in-process ray.init)
keeps its files in a directory of the session's own ($RAY_TMPDIR, removed at the end);
the session fails if the user's Ray directory changed meanwhile, or if a plain
`ray.init()` no longer starts a Ray there (support/raytmp.py).

The cache directory is redirected for the whole session (before any test module is
imported), so no test ever reads or writes ~/.cache/collatz_ray. Tests that need the
cache elsewhere (the canonical-file test) still point it where they like with
monkeypatch.setenv, which restores this value afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from support import raytmp
from support.clitools import installed_env

REPO = Path(__file__).resolve().parents[1]
_CACHE_ENV = "COLLATZ_RAY_CACHE"
_session_cache: str | None = None
#: Set in the controlling process (xdist's workers inherit its $RAY_TMPDIR): the user's
#: environment, their Ray directory as it was, and the directory the tests' Rays use.
_user_env: dict[str, str] | None = None
_user_ray: dict[str, str | None] = {}
_tests_ray_tmpdir: str | None = None


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        global _user_env, _user_ray, _tests_ray_tmpdir
        _user_env = dict(os.environ)
        _user_ray = raytmp.snapshot(raytmp.ray_dir(_user_env))
        _tests_ray_tmpdir = raytmp.private_ray_tmpdir()
        os.environ["RAY_TMPDIR"] = _tests_ray_tmpdir
    # Before any test imports Ray: Ray reads RAY_AUTH_MODE once per process, and an
    # in-process embedded Ray must agree with the token-auth processes it starts.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    # The embedded Rays of the tests start without Ray's dashboard: about 8 CPU-seconds
    # less per search on 2 cores. The faulty search (e2e/test_reliability.py) runs the
    # default, dashboard on, and checks where it listens.
    os.environ.setdefault("COLLATZ_RAY_DASHBOARD", "0")
    global _session_cache
    _session_cache = tempfile.mkdtemp(prefix="collatz_ray_test_cache_")
    os.environ[_CACHE_ENV] = _session_cache


def pytest_collection_modifyitems(config, items):
    # Real searches first: they are the long poles, so they should not start last.
    items.sort(
        key=lambda item: (
            0 if "/e2e/" in str(item.path) or "smoke_experiment" in getattr(item, "fixturenames", ()) else 1
        )
    )


def pytest_sessionfinish(session, exitstatus):
    """The user's Ray directory as it was, and a plain ray.init() still works there (asked
    only when some test ran Ray). Either failing fails the session."""
    if _user_env is None or _tests_ray_tmpdir is None:
        return  # an xdist worker: the controller checks
    problems = [
        f"the tests changed {raytmp.ray_dir(_user_env)}: {change}"
        for change in raytmp.changes(_user_ray, raytmp.snapshot(raytmp.ray_dir(_user_env)))
    ]
    # Where the user's Ray directory already named a current cluster (theirs, or a dead
    # one), a plain ray.init() joins or fails on it whatever the tests did: not asked.
    joins = any(name.startswith("ray_current_cluster") for name in _user_ray)
    if (Path(_tests_ray_tmpdir) / "ray").exists() and not problems and not joins:
        problem = raytmp.plain_ray_init_problem(_user_env)
        if problem:
            problems.append(f"after the tests, {problem}")
    shutil.rmtree(_tests_ray_tmpdir, ignore_errors=True)
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for line in problems:
            if reporter is not None:
                reporter.write_line(f"LEFT BEHIND: {line}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config):
    if _session_cache is not None:
        shutil.rmtree(_session_cache, ignore_errors=True)


@pytest.fixture(scope="session")
def eval_csv(tmp_path_factory) -> Path:
    """A small valid evaluation CSV (500 rows up to 64 bits) for trainers and evaluators,
    so no test generates the 50,000-row canonical file."""
    from collatz_ray.trainer.evalset_csv import write_evalset

    path = tmp_path_factory.mktemp("evalset") / "eval_500.csv"
    write_evalset(path, samples=500, seed=1, max_bits=64)
    return path


def once_per_session(tmp_path_factory, name: str, make) -> Path:
    """`make(directory)` once for the whole test session, across xdist workers too: the
    first worker to ask makes it under a file lock, the others wait and reuse it."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this session
    directory, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(directory, ignore_errors=True)  # a worker's failed attempt
            directory.mkdir(parents=True)
            make(directory)
            done.touch()
    return directory


@pytest.fixture(scope="session")
def installed_python(tmp_path_factory) -> Path:
    """The Python of a fresh venv holding collatz-ray as a built wheel, not the checkout.

    The wheel is built from this repository and installed into the new venv; its
    dependencies (Ray, torch, ...) come from this interpreter's site-packages through a
    path entry, so nothing is downloaded. Commands run with it from a directory outside
    the repository use only what the wheel ships (search_spaces/ included)."""
    import subprocess
    import sys
    import sysconfig

    def make(root: Path) -> None:
        wheels = root / "wheels"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--wheel-dir",
                str(wheels),
                str(REPO),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        venv = root / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        site = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        # A plain path line: the dependencies, but not this checkout's editable-install hook.
        Path(site, "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        (wheel,) = wheels.glob("collatz_ray-*.whl")
        # --ignore-installed: the dependencies' site-packages holds this checkout's
        # editable install under the same version, which pip would otherwise take as there.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(venv / "bin" / "python"),
                "install",
                "--quiet",
                "--no-deps",
                "--ignore-installed",
                str(wheel),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )

    return once_per_session(tmp_path_factory, "installed", make) / "venv" / "bin" / "python"


@pytest.fixture(scope="session")
def smoke_experiment(tmp_path_factory, eval_csv, installed_python) -> Path:
    """The README's first command, `python -m collatz_ray.tune --space lookahead --smoke`,
    run once per session from an installed wheel in a directory outside the repository
    (4 tiny trials at 2 at once, so ASHA stops must free their slots), for the tests that
    read experiments. Tests that change it work on a copy."""
    import subprocess

    def make(root: Path) -> None:
        storage, elsewhere = root / "storage", root / "elsewhere"
        elsewhere.mkdir()
        # RAY_ADDRESS=local: a fresh embedded Ray even when the tests' Ray directory names a
        # `ray start` cluster (another test's, maybe dead) as current, which ray.init() would join.
        proc = subprocess.run(
            [
                str(installed_python),
                "-m",
                "collatz_ray.tune",
                "--space",
                "lookahead",
                "--smoke",
                "--storage",
                str(storage),
                "--name",
                "smoke",
                "--eval-csv",
                str(eval_csv),
                "--seed",
                "0",
                "--max-concurrent",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=elsewhere,
            env=installed_env(RAY_ADDRESS="local"),
        )
        assert proc.returncode == 0, f"smoke search failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        (storage / "tune.out").write_text(proc.stdout)  # what the user saw, for tests of it

    return once_per_session(tmp_path_factory, "smoke_search", make) / "storage" / "smoke"


@pytest.fixture
def old_layout_experiment(tmp_path) -> Path:
    """A copy of a small real experiment (tests/data/old_layout: 3 trials, from before
    studies, banks and trackers were recorded) under tmp/store."""
    shutil.copytree(REPO / "tests" / "data" / "old_layout", tmp_path / "store")
    return tmp_path / "store" / "old-layout"
