"""Modules renamed since an experiment was made still unpickle from its tuner.pkl
(collatz_ray/_moved.py)."""

from __future__ import annotations

import importlib
import pickle

from ray import cloudpickle, tune

import collatz_ray  # noqa: F401 - installs the old module names
from collatz_ray._moved import MOVED
from collatz_ray.search.ray import tracker_callbacks


def _never_called(config) -> None:
    raise AssertionError("no trial runs here")


def test_every_renamed_module_imports_as_its_new_home():
    for old, new in MOVED.items():
        if isinstance(new, str):
            assert importlib.import_module(old) is importlib.import_module(new), old


def test_a_tuner_pkl_naming_the_old_tracking_module_unpickles(tmp_path):
    """Tune pickles the search's callbacks into tuner.pkl; an experiment started before
    search/ray/tracking.py was renamed names that module."""
    tuner = tune.Tuner(
        _never_called,
        run_config=tune.RunConfig(
            storage_path=str(tmp_path), name="exp", callbacks=[tracker_callbacks.EpochTensorBoard()]
        ),
    )
    new, old = b"collatz_ray.search.ray.tracker_callbacks", b"collatz_ray.search.ray.tracking"
    assert new in cloudpickle.dumps(tuner._local_tuner.__getstate__())  # what makes the rename matter
    # Protocol 2 names a class as plain text (no length prefixes or frames to rewrite).
    as_before = cloudpickle.dumps(tuner._local_tuner.__getstate__(), protocol=2).replace(new, old)
    assert old in as_before and new not in as_before
    state = pickle.loads(as_before)
    (callback,) = state["_run_config"].callbacks
    assert isinstance(callback, tracker_callbacks.EpochTensorBoard)
