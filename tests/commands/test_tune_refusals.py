"""`python -m collatz_ray.tune` refuses bad flags and damaged experiments in one line,
before Ray starts, and never touches what an experiment already holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.clitools import run_command, tree_digest


@pytest.fixture
def experiment(old_layout_experiment) -> Path:
    return old_layout_experiment


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--storage", "bogus://x"], "unknown scheme"),
        (["--name", "../escape"], "--name"),
        (["--name", "/abs/escape"], "--name"),
    ],
)
def test_bad_flags_are_one_line_before_ray(tmp_path, flags, fragment):
    outcome = run_command("tune", "--space", "smoke", "--storage", str(tmp_path / "r"), *flags)
    outcome.one_error_line(fragment)
    assert not (tmp_path / "escape").exists() and not Path("/abs/escape").exists()


def test_a_storage_symlink_loop_is_one_line(tmp_path):
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    run_command("tune", "--space", "smoke", "--storage", str(loop)).one_error_line("cannot be resolved")


def test_an_existing_experiment_is_not_started_again(experiment):
    before = tree_digest(experiment)
    outcome = run_command(
        "tune", "--space", "smoke", "--storage", str(experiment.parent), "--name", experiment.name
    )
    outcome.one_error_line("exists", "--resume")
    assert tree_digest(experiment) == before


def test_resume_refuses_another_space(experiment):
    before = tree_digest(experiment)
    outcome = run_command(
        "tune", "--resume", "--name", experiment.name, "--storage", str(experiment.parent), "--space", "beta"
    )
    outcome.one_error_line("--space beta", "drop --space")
    assert tree_digest(experiment) == before


@pytest.mark.parametrize("damage", ["empty", "truncated", "not_json", "wrong_type"])
def test_resume_of_damaged_settings_is_one_line(experiment, damage):
    settings = experiment / "collatz_search.json"
    text = settings.read_text()
    settings.write_text(
        {
            "empty": "",
            "truncated": text[: len(text) // 2],
            "not_json": "\x00\x01garbage",
            "wrong_type": json.dumps({**json.loads(text), "budget": "lots"}),
        }[damage]
    )
    before = tree_digest(experiment)
    outcome = run_command("tune", "--resume", "--name", experiment.name, "--storage", str(experiment.parent))
    outcome.one_error_line("collatz_search.json")
    assert tree_digest(experiment) == before


def test_a_second_search_of_the_same_experiment_is_refused_naming_the_first(tmp_path, eval_csv):
    """Another process holds the experiment (as a running search does): the second is
    refused in one line with the holder's pid, before any Ray starts."""
    storage = tmp_path / "results"
    storage.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\n"
            "from collatz_ray._lock import hold_lock\n"
            f"with hold_lock(Path({str(storage)!r}) / '.same.lock', what='experiment same'):\n"
            "    print('held', flush=True)\n    time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        outcome = run_command(
            "tune",
            "--space",
            "smoke",
            "--storage",
            str(storage),
            "--name",
            "same",
            "--eval-csv",
            str(eval_csv),
        )
        outcome.one_error_line("experiment same", f"pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert not (storage / "same").exists()
