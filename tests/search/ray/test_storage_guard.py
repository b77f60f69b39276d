"""The storage guard Tune saves with an experiment guards the experiment where it is now."""

from __future__ import annotations

import pickle
import time

import pytest

from collatz_ray.search.ray.callbacks import StorageGuard
from collatz_ray.search.storage import StorageFailed


@pytest.fixture
def running():
    yield
    StorageGuard.running = None


def test_a_restored_guard_probes_the_experiment_this_search_runs_at_once(tmp_path, running):
    """Saved where the experiment was (now gone) by a process whose clock ran far ahead:
    restored, it must probe the experiment's new place, and at its first check."""
    saved = StorageGuard(str(tmp_path / "gone" / "old-name"))
    saved._last = time.monotonic() + 10**6
    data = pickle.dumps(saved)
    here = tmp_path / "new-name"
    here.mkdir()
    StorageGuard.running = str(here)
    restored = pickle.loads(data)
    assert restored.path == str(here) and restored.stop_all() is False
    here.rmdir()  # the experiment's storage gives out: the very next check says so
    restored._last = 0.0
    with pytest.raises(StorageFailed):
        restored.stop_all()


def test_without_a_running_search_the_saved_path_stays(tmp_path, running):
    restored = pickle.loads(pickle.dumps(StorageGuard(str(tmp_path))))
    assert restored.path == str(tmp_path) and restored._last == 0.0
