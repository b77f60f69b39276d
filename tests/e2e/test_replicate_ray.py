"""A replication on real Ray: the session's smoke search's top two configurations, each
retrained with two new seeds at the search's own budget, stopped by SIGTERM while a trial
trains, finished with the command it printed, then read back by `collatz_ray.results`.
Four tiny trials, two at once."""

from __future__ import annotations

import json
import os
import shlex
import signal
import statistics
from pathlib import Path

from support.clitools import run_command
from support.searches import (
    REPLICATE,
    Search,
    epochs_by_trial,
    freeze_a_trial_in_flight,
    read_reports,
    wait_for,
)
from support.width import overlong, python_reprs, unwrapped

from collatz_ray.results.read import load_experiment
from collatz_ray.results.report import ranked_trials


def last_report(trial_dir: Path) -> dict:
    return read_reports(trial_dir / "result.json")[-1]


def test_the_smoke_search_top_two_replicate_with_two_seeds(smoke_experiment, tmp_path):
    storage = tmp_path / "storage"
    followup = storage / "followup"
    epochs = json.loads((smoke_experiment / "collatz_search.json").read_text())["budget"]["epochs"]
    first = Search(
        tmp_path,
        "replicate",
        str(smoke_experiment),
        "--top",
        "2",
        "--seeds",
        "2",
        "--storage",
        str(storage),
        "--name",
        "followup",
        "--max-concurrent",
        "2",
        command=REPLICATE,
    )
    try:
        # A trial in flight is frozen, so the SIGTERM surely finds the replication running.
        wait_for(
            lambda: (
                "Dashboard:" in first.stdout() and freeze_a_trial_in_flight(first, followup, epochs=epochs)
            ),
            timeout=600,
            every=0.05,
            alive=first,
            what="a replicate's first report",
        )
        before = epochs_by_trial(followup)
        os.kill(first.proc.pid, signal.SIGTERM)
        assert first.wait(timeout=300) == 143, first.stderr()[-3000:]
    finally:
        assert not first.cleanup(), "processes of the stopped replication survived"
    (hint,) = [line for line in first.stderr().splitlines() if "Resume with: " in line]
    command = shlex.split(hint.split("Resume with: ", 1)[1])
    assert command[:3] == ["python", "-m", "collatz_ray.replicate"] and "--resume" in command, hint

    second = Search(tmp_path, "resumed", *command[3:], command=REPLICATE)
    try:
        assert second.wait(timeout=900) == 0, f"{second.stdout()[-3000:]}\n{second.stderr()[-3000:]}"
    finally:
        second.cleanup()
    stdout = second.stdout()
    assert f"Experiment: {followup}" in stdout and "Seed replicates" in stdout
    headers = [line.split() for line in (first.stdout() + stdout).splitlines() if line.startswith("trial ")]
    assert headers and all(h[2] == "seed" for h in headers), headers  # replicates of a config differ by seed
    # Nothing reported before the stop was lost or reported twice.
    for tid, seq in epochs_by_trial(followup).items():
        assert seq[: len(before.get(tid, []))] == before.get(tid, []), (tid, before.get(tid), seq)
        assert seq == sorted(set(seq)), (tid, seq)

    source = load_experiment(smoke_experiment)
    distinct = list(
        {
            json.dumps(t.params, sort_keys=True): t for t in ranked_trials(source) if "objective" in t.metrics
        }.values()
    )[:2]
    settings = json.loads((followup / "collatz_search.json").read_text())
    assert settings["replicate"]["source"] == str(smoke_experiment.resolve())
    assert settings["replicate"]["seeds"] == [1, 2]  # the smoke search trained with seed 0
    assert settings["budget"]["epochs"] == epochs

    # Each replicate trains its source trial's config, but for the seed, to the full budget.
    by_config: dict[str, list[int]] = {}
    trial_dirs = sorted(followup.glob("collatz_trial_*"))
    assert len(trial_dirs) == 4
    for trial_dir in trial_dirs:
        params = json.loads((trial_dir / "params.json").read_text())
        seed = params.pop("seed")
        assert seed in (1, 2)
        (origin,) = [t for t in distinct if t.params == params]
        config = json.loads((trial_dir / "train_config.json").read_text())
        assert {k for k, v in config.items() if origin.config[k] != v} == {"seed"}
        assert config["seed"] == seed
        report = last_report(trial_dir)
        assert report["epoch"] == epochs
        by_config.setdefault(json.dumps(params, sort_keys=True), []).append(report["traj_total_violations"])
    assert sorted(map(len, by_config.values())) == [2, 2]

    outcome = run_command("results", followup, "--format", "json")
    assert outcome.status == 0, outcome.stderr
    replicates = json.loads(outcome.stdout)["replicates"]
    assert [c["params"] for c in replicates["configurations"]] == sorted(
        [t.params for t in distinct], key=lambda p: statistics.fmean(by_config[json.dumps(p, sort_keys=True)])
    )
    for c in replicates["configurations"]:
        assert c["finished"] == 2
        assert c["metrics"]["traj_total_violations"]["mean"] == statistics.fmean(
            by_config[json.dumps(c["params"], sort_keys=True)]
        )
    means = sorted(statistics.fmean(v) for v in by_config.values())
    assert replicates["lead"]["difference"] == means[1] - means[0]
    # The verdict's one line, wrapped on the terminal and in summary.md.
    assert replicates["verdict"] in unwrapped(stdout)
    assert replicates["verdict"] in unwrapped((followup / "summary.md").read_text())
    assert not overlong(first.stdout() + stdout) and not python_reprs(first.stdout() + stdout)


def test_the_searcher_hands_out_each_config_once_and_a_restored_one_goes_on(tmp_path):
    """What --resume relies on: Tune saves the searcher with its state and restores it
    into a fresh one (no Ray started here)."""
    from ray.tune.search import Searcher

    from collatz_ray.search.ray.given import GivenConfigs

    configs = [{"lookahead": 10, "seed": 1}, {"lookahead": 10, "seed": 2}, {"lookahead": 20, "seed": 1}]
    first = GivenConfigs(configs)
    assert first.suggest("t1") == configs[0]
    first.save(str(tmp_path / "state.json"))
    restored = GivenConfigs([])
    restored.restore(str(tmp_path / "state.json"))
    assert [restored.suggest(f"t{i}") for i in (2, 3, 4)] == [configs[1], configs[2], Searcher.FINISHED]
    assert first.suggest("t5") == configs[1]  # each its own copy
