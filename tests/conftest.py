"""Shared fixtures.

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

_CACHE_ENV = "COLLATZ_RAY_CACHE"
_session_cache: str | None = None


def pytest_configure(config):
    # Before any test imports Ray: Ray reads RAY_AUTH_MODE once per process, and an
    # in-process embedded Ray must agree with the token-auth processes it starts.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    global _session_cache
    _session_cache = tempfile.mkdtemp(prefix="collatz_ray_test_cache_")
    os.environ[_CACHE_ENV] = _session_cache


def pytest_unconfigure(config):
    if _session_cache is not None:
        shutil.rmtree(_session_cache, ignore_errors=True)


@pytest.fixture(scope="session")
def eval_csv(tmp_path_factory) -> Path:
    """A small valid evaluation CSV (500 rows up to 64 bits) for trainers and evaluators,
    so no test generates the 50,000-row canonical file."""
    from collatz_ray.evalset import write_evalset

    path = tmp_path_factory.mktemp("evalset") / "eval_500.csv"
    write_evalset(path, samples=500, seed=1, max_bits=64)
    return path


@pytest.fixture(scope="session")
def smoke_experiment(tmp_path_factory, eval_csv) -> Path:
    """A finished smoke search (4 tiny trials, ASHA stops included) made once per session
    by the real command, for the tests that read experiments (about 1-2 minutes). Tests
    that change it work on a copy."""
    import subprocess
    import sys

    storage = tmp_path_factory.mktemp("smoke_search")
    # RAY_ADDRESS=local: a fresh embedded Ray even when /tmp/ray/ray_current_cluster
    # names a `ray start` cluster (another test's, maybe dead), which ray.init() would join.
    proc = subprocess.run([sys.executable, "-m", "collatz_ray.tune", "--space", "smoke",
                           "--storage", str(storage), "--name", "smoke",
                           "--eval-csv", str(eval_csv), "--seed", "0",
                           # 4 trials on 2 slots on any machine: ASHA stops must free them.
                           "--max-concurrent", "2"],
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "RAY_ADDRESS": "local"})
    assert proc.returncode == 0, f"smoke search failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    (storage / "tune.out").write_text(proc.stdout)  # what the user saw, for tests of it
    return storage / "smoke"
