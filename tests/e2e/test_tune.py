"""The search service end to end, with real Ray: an embedded local instance, and a real
`ray start --head` for --address. Sized for a 2-core CI machine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.searches import TUNE, read_reports, trial_dirs

from collatz_ray.search.spaces import load_space


def run_tune(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TUNE, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def trial_results(experiment: Path) -> dict[str, list[dict]]:
    """Every trial's reports, from Ray's result.json files (one JSON object a line)."""
    return {d.name: read_reports(d / "result.json") for d in trial_dirs(experiment).values()}


@pytest.fixture(scope="module")
def smoke_run(smoke_experiment):
    """The session's smoke search (tests/conftest.py): what it printed, and its path."""
    return (smoke_experiment.parent / "tune.out").read_text(), smoke_experiment


def test_smoke_search_runs_end_to_end(smoke_run):
    stdout, experiment = smoke_run
    assert "Best trial" in stdout
    assert "worker processes have been started" not in stdout  # Ray's warning, nothing wrong
    assert f"Experiment: {experiment}" in stdout
    assert list(experiment.glob("experiment_state-*.json")), "Ray's experiment state is missing"
    assert (experiment / "tuner.pkl").exists()
    assert (experiment / "collatz_search.json").exists()
    # The search runs with umask 077: what it writes is its user's alone.
    assert experiment.stat().st_mode & 0o077 == 0, oct(experiment.stat().st_mode)
    assert all(p.stat().st_mode & 0o077 == 0 for p in experiment.glob("collatz_trial_*/result.json"))
    budget = load_space("lookahead").smoke().budget
    results = trial_results(experiment)
    assert len(results) == budget.num_samples
    for reports in results.values():
        assert reports, "a trial ended without a report"
        last = reports[-1]
        for key in (
            "traj_total_violations",
            "pass_rate",
            "epoch",
            "loss",
            "beta",
            "seconds",
            "samples_per_second",
            "objective",
        ):
            assert key in last
        assert last["traj_total_steps"] == 429
        epochs = [r["epoch"] for r in reports]
        assert epochs == sorted(epochs) and len(set(epochs)) == len(epochs)


def test_more_trials_than_slots_and_asha_stops_never_deadlock(smoke_run):
    """Four trials on two slots with ASHA stopping some must all end (the module
    fixture's search finished at all): a stopped trial's resources go to the next one.
    (Ray issue 54305 once made a stopped Train V2 trial keep its placement group.)"""
    stdout, experiment = smoke_run
    assert "2 at once" in stdout  # more trials (4) than slots (2) on a 2-CPU machine
    budget = load_space("lookahead").smoke().budget
    last_epochs = [reports[-1]["epoch"] for reports in trial_results(experiment).values()]
    assert min(last_epochs) < budget.epochs, f"ASHA stopped no trial: {last_epochs}"
    assert max(last_epochs) == budget.epochs


def test_same_seed_suggests_same_configs_in_same_order(tmp_path):
    """The searcher of every search (TPE recorded in its study database), fed the same
    results, suggests the same configs, in this process and in a fresh one."""
    code = (
        "import json, sys; from collatz_ray.search.ray.searcher import StudySearch\n"
        "from collatz_ray.search.spaces import load_space; from collatz_ray.search.study import StudyStorage\n"
        "seed, url = int(sys.argv[1]), sys.argv[2]\n"
        "s = StudySearch(load_space('full'), seed=seed, storage=StudyStorage(url=url, study_name='s'),\n"
        "                max_epochs=1); out = []\n"
        "for i in range(12):\n"
        "    c = s.suggest(f't{i}'); out.append(c)\n"
        "    # deterministic results, so that TPE's model phase is exercised too\n"
        "    s.on_trial_complete(f't{i}', {'objective': float(len(json.dumps(c)) % 7), 'epoch': 1})\n"
        "print(json.dumps(out))\n"
    )

    def suggestions(seed: int, label: str, **env: str) -> list[dict]:
        done = subprocess.run(
            [sys.executable, "-c", code, str(seed), f"sqlite:///{tmp_path / label}.db"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **env},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = suggestions(3, "first")
    # Nothing depends on process state such as hash seeds.
    assert suggestions(3, "second", PYTHONHASHSEED="123") == first
    assert suggestions(4, "other") != first


def test_a_search_whose_trials_cannot_start_stops_instead_of_hanging(tmp_path, eval_csv):
    """All CPUs but 0.2 are held by a placement group, so no trial of 1 CPU can ever be
    placed: the search must stop after the start timeout with one line that says so,
    not wait forever."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    from collatz_ray.search.ray import cluster, tuner
    from collatz_ray.search.ray.callbacks import TrialsNotPlaced
    from collatz_ray.search.settings import SearchSettings

    signal.alarm(400)  # a hang fails the test instead of the whole CI run
    try:
        resources = cluster.connect(None, num_cpus=2)
        blocker = placement_group([{"CPU": resources["CPU"] - 0.2}])
        ray.get(blocker.ready(), timeout=60)
        space = load_space("smoke").with_budget(num_samples=1)
        settings = SearchSettings(
            space=space,
            storage=str(tmp_path),
            experiment="stuck",
            cpus_per_trial=1.0,
            gpus_per_trial=0.0,
            seed=0,
            max_concurrent=1,
            eval_csv=str(eval_csv),
            start_timeout_s=5,
        )
        started = time.monotonic()
        with pytest.raises(TrialsNotPlaced) as stopped:
            tuner.run(settings, num_samples=1)
        elapsed = time.monotonic() - started
        message = str(stopped.value)
        assert "\n" not in message and "within 5 s" in message and "1 CPU + 0 GPU" in message, message
        assert elapsed < 300
        remove_placement_group(blocker)
    finally:
        signal.alarm(0)
        cluster.shutdown()


OLD_LAYOUT = Path(__file__).resolve().parents[1] / "data" / "old_layout"


def test_an_experiment_of_the_old_layout_resumes_moved_and_renamed(tmp_path, eval_csv):
    """tests/data/old_layout was made by collatz-ray 0.1 (the flat layout, before the
    package was split into layers): 3 smoke trials, the driver SIGKILLed once the first
    had finished and the second was running. Its pickles name the old modules, its
    checkout is gone (space_path points nowhere), and here it is copied to another
    storage directory under another name. It must finish there, keeping the finished
    trial as it was, with every trial's files in the copy."""
    storage = tmp_path / "store"
    experiment = storage / "renamed-copy"
    shutil.copytree(OLD_LAYOUT / "old-layout", experiment)
    finished = {
        name: (experiment / name / "result.json").read_bytes() for name in ("collatz_trial_3a711499",)
    }
    proc = run_tune(
        "--resume",
        "--name",
        "renamed-copy",
        "--storage",
        str(storage),
        "--eval-csv",
        str(eval_csv),
        env={"RAY_ADDRESS": "local"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    reports = trial_results(experiment)
    assert len(reports) == 3, sorted(reports)
    assert all(lines and lines[-1]["epoch"] in (20, 40) for lines in reports.values()), reports
    for name, data in finished.items():
        assert (experiment / name / "result.json").read_bytes() == data
    best = [line for line in proc.stdout.splitlines() if line.startswith("Best trial ")]
    assert best and f"collatz_trial_{best[0].split()[2].rstrip(':')}" in reports, best
    assert not (storage / "old-layout").exists()


def test_a_truncated_tuner_pkl_is_one_line_and_touches_nothing(tmp_path, eval_csv):
    storage = tmp_path / "store"
    experiment = storage / "old-layout"
    shutil.copytree(OLD_LAYOUT / "old-layout", experiment)
    pkl = experiment / "tuner.pkl"
    pkl.write_bytes(pkl.read_bytes()[:100])
    before = {p: p.read_bytes() for p in experiment.rglob("collatz_trial_*/*") if p.is_file()}
    proc = run_tune(
        "--resume",
        "--name",
        "old-layout",
        "--storage",
        str(storage),
        "--eval-csv",
        str(eval_csv),
        env={"RAY_ADDRESS": "local"},
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("collatz_ray.tune: error:")]
    assert len(errors) == 1 and "saved state cannot be read" in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert {p: p.read_bytes() for p in before} == before
