"""`python -m collatz_ray.results` on a replication: each configuration over its seeds,
and the verdict on the best one's lead, in the table, summary.md and JSON. The
replications are written by hand (tests/experiments.py); tests/e2e/test_replicate_ray.py
reads a real one."""

from __future__ import annotations

import json
import math
import os
import statistics

import pytest
from support.clitools import run_command
from support.experiments import replication_experiment, search_experiment, write_trial
from support.width import unwrapped

from collatz_ray.results.stats import t_quantile

A = {"lookahead": 10, "target_type": "fixed", "mine_negatives": False}
B = {"lookahead": 20, "target_type": "split", "mine_negatives": True, "mine_interval": 20}


def results_json(path) -> dict:
    outcome = run_command("results", path, "--format", "json")
    assert outcome.status == 0, outcome.stderr
    return json.loads(outcome.stdout)


def test_a_clear_lead_is_larger_than_seed_noise(tmp_path):
    path = replication_experiment(tmp_path / "rep", [(A, [20, 22, 21]), (B, [10, 12, 11])])
    outcome = run_command("results", path)
    assert outcome.status == 0, outcome.stderr
    text = outcome.stdout
    assert "Seed replicates" in text
    assert (
        "2 configurations from /somewhere/smoke, each trained with seeds 1, 2, 3 to the full "
        "budget (60 epochs)"
    ) in text
    section = text[text.index("Seed replicates") : text.index("Lead of")]
    # The configurations listed best first with their source trials; the table's # refers to them.
    assert (
        "1. lookahead=20, target_type=split, mine_negatives=true, mine_interval=20 (source trial src1)"
        in section
    )
    assert "2. lookahead=10, target_type=fixed, mine_negatives=false (source trial src0)" in section
    rows = {line.split()[0]: line.split() for line in section.splitlines() if line.startswith(("1  ", "2  "))}
    # B first (mean 11), all three seeds done, sd 1, min..max and the t-interval
    # 11 -+ t(0.975, 2) / sqrt(3); A second.
    half = t_quantile(0.975, 2) / math.sqrt(3)
    assert rows["1"] == [
        "1",
        "violations",
        "3/3",
        "11.0",
        "1.0",
        "10..12",
        f"{11 - half:.1f}..{11 + half:.1f}",
    ]
    assert rows["2"][1:6] == ["violations", "3/3", "21.0", "1.0", "20..22"]
    verdict = " ".join(text[text.index("Lead of") :].split("\n\n")[0].split())
    welch = t_quantile(0.975, 4) * math.sqrt(2 / 3)  # equal spreads: df = 4
    assert verdict == (
        f"Lead of lookahead=20, target_type=split, mine_negatives=true, mine_interval=20 over "
        f"lookahead=10, target_type=fixed, mine_negatives=false: 10.0 ± {welch:.1f} violations "
        "(95% CI of the difference of means, Welch's t): larger than seed noise."
    )
    assert verdict == results_json(path)["replicates"]["verdict"]
    assert verdict in unwrapped((path / "summary.md").read_text())


def test_overlapping_seeds_are_within_noise_and_json_has_every_number(tmp_path):
    path = replication_experiment(tmp_path / "rep", [(A, [10, 30, 20]), (B, [12, 28, 26])])
    data = results_json(path)["replicates"]
    assert data["seeds"] == [1, 2, 3] and data["ranked_by"] == "traj_total_violations"
    first, second = data["configurations"]
    assert (first["params"], first["finished"], first["source_trials"]) == (A, 3, ["src0"])
    assert sorted(first["trials"]) == ["c0s1", "c0s2", "c0s3"]
    violations = first["metrics"]["traj_total_violations"]
    assert (violations["n"], violations["mean"], violations["lowest"], violations["highest"]) == (
        3,
        20,
        10,
        30,
    )
    assert violations["std"] == pytest.approx(10.0)
    # 20 -+ t(0.975, 2) * 10 / sqrt(3) = 20 -+ 24.8, cut at 0: no count is negative.
    assert violations["ci"] == pytest.approx([0, 20 + t_quantile(0.975, 2) * 10 / math.sqrt(3)])
    unseen = first["metrics"]["traj_unseen_violations"]
    assert unseen["mean"] == pytest.approx(statistics.fmean([5, 15, 10]))
    passes = first["metrics"]["pass_rate"]
    assert passes["mean"] == pytest.approx(93.0) and passes["ci"][1] <= 100
    lead = data["lead"]
    assert lead["difference"] == pytest.approx(2.0) and lead["beyond_noise"] is False
    assert data["verdict"].endswith("within seed noise.")
    assert results_json(path)["experiments"][0]["replicates"] == data


def test_seeds_still_running_are_shown_and_the_lead_waits_for_two(tmp_path):
    path = replication_experiment(tmp_path / "rep", [(A, [20, None, None]), (B, [10, 12, None])])
    outcome = run_command("results", path)
    assert outcome.status == 0, outcome.stderr
    assert "2/3" in outcome.stdout and "1/3" in outcome.stdout
    assert (
        "Lead not judged yet: both of the two best configurations need 2 finished seeds (they have 2 and 1)."
    ) in outcome.stdout


def test_a_damaged_plan_is_a_note_and_trials_are_grouped_by_their_settings(tmp_path):
    path = replication_experiment(
        tmp_path / "rep", [(A, [20, 22]), (B, [10, 12])], seeds=(1, 2), plan={"seeds": "many"}
    )
    data = results_json(path)
    assert [c["params"] for c in data["replicates"]["configurations"]] == [B, A]
    assert data["replicates"]["source"] is None
    assert any(
        "replicate: seeds: expected a list of integers" in note for note in data["experiments"][0]["notes"]
    )
    assert len(data["experiments"][0]["notes"]) == 1  # once, though the summary was built twice


def test_a_trial_outside_the_plan_is_left_out_with_a_note(tmp_path):
    path = replication_experiment(tmp_path / "rep", [(A, [20, 22]), (B, [10, 12])], seeds=(1, 2))
    write_trial(path, "stray", params={"lookahead": 5, "seed": 1}, violations=3)
    data = results_json(path)
    assert sum(len(c["trials"]) for c in data["replicates"]["configurations"]) == 4
    assert (
        "trial stray: settings in no configuration of the plan; left out" in data["experiments"][0]["notes"]
    )


def test_a_search_has_no_replicate_section(tmp_path):
    path = search_experiment(tmp_path / "search")
    write_trial(path, "a1", params=A, violations=12)
    outcome = run_command("results", path)
    assert outcome.status == 0 and "Seed replicates" not in outcome.stdout
    assert results_json(path)["replicates"] is None


def test_a_resumed_run_is_read_from_its_own_state_file(tmp_path):
    """A resume writes experiment_state-<its start>.json, and the end of the run rewrites
    the first session's file too (with that session's statuses): the later name holds
    the statuses, whichever file was written last."""
    path = replication_experiment(tmp_path / "rep", [(A, [20, 22]), (B, [10, 12])], seeds=(1, 2))
    for result in path.glob("collatz_trial_*/result.json"):  # as a function trial's: never done
        result.write_text(result.read_text().replace('"done": true', '"done": false'))

    def state(status: str) -> dict:
        return {
            "trial_data": [
                [
                    json.dumps(
                        {
                            "trial_id": t.name.removeprefix("collatz_trial_"),
                            "status": status,
                            "relative_logdir": t.name,
                            "config": {},
                        }
                    ),
                    {},
                ]
                for t in sorted(path.glob("collatz_trial_*"))
            ]
        }

    resumed = path / "experiment_state-2026-11-29_17-49-24.json"
    resumed.write_text(json.dumps(state("TERMINATED")))
    first = path / "experiment_state-2026-11-29_17-39-14.json"
    first.write_text(json.dumps(state("RUNNING")))
    os.utime(first, (resumed.stat().st_mtime + 1,) * 2)  # written last
    configurations = results_json(path)["replicates"]["configurations"]
    assert [c["finished"] for c in configurations] == [2, 2]
