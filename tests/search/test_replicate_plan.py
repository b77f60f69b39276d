"""Planning a replication (collatz_ray/search/replication.py): which configurations of an
experiment are its top K, which seeds are new, what a given configuration means, and
the plan as the follow-up's settings save it. On experiments written by hand, and on the
session's real smoke search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.experiments import search_experiment, write_trial

from collatz_ray.errors import UsageError
from collatz_ray.results.read import load_experiment
from collatz_ray.results.report import ranked_trials
from collatz_ray.search.replication import (
    ReplicatePlan,
    given_plan,
    new_seeds,
    parse_config_text,
    plan_from_experiment,
)
from collatz_ray.search.settings import experiment_space, load_settings_json
from collatz_ray.search.spaces import load_space

A = {"lookahead": 10, "target_type": "fixed", "mine_negatives": False}
B = {"lookahead": 20, "target_type": "split", "mine_negatives": True, "mine_interval": 20}
C = {"lookahead": 5, "target_type": "adaptive", "mine_negatives": False}


@pytest.fixture
def source(tmp_path) -> Path:
    """Six trials: B best (8), then A twice (12 and 15, the second trained with seed 2),
    then C stopped by ASHA with fewer violations (5), one errored, one still running."""
    exp = search_experiment(tmp_path / "src")
    write_trial(exp, "a1", params=A, violations=12)
    write_trial(exp, "b1", params=B, violations=8)
    write_trial(exp, "a2", params=A, violations=15, seed=2)
    write_trial(exp, "c1", params=C, violations=5, epoch=20)
    write_trial(exp, "e1", params=C, violations=3, epoch=20, error="RuntimeError: diverged", done=False)
    write_trial(exp, "r1", params=A, violations=1, epoch=40, done=False)
    return exp


def plan(exp: Path, *, top: int, seeds: int) -> ReplicatePlan:
    space = experiment_space(load_settings_json(str(exp.parent), exp.name), exp)
    return plan_from_experiment(
        ranked_trials(load_experiment(exp)), space, top=top, seeds=seeds, source=str(exp)
    )


def test_top_configurations_are_distinct_and_full_budget_trials_rank_first(source):
    found = plan(source, top=3, seeds=2)
    assert [c.params for c in found.configurations] == [B, A, C]
    # A's two trials are one configuration; the errored and the running trial count for nothing.
    assert [c.source_trials for c in found.configurations] == [("b1",), ("a1", "a2"), ("c1",)]
    assert found.source == str(source)


def test_seeds_are_the_smallest_no_source_trial_used(source):
    assert plan(source, top=1, seeds=3).seeds == (1, 3, 4)  # 0 (all but a2) and 2 (a2) are taken
    assert new_seeds([], 2) == (0, 1)
    assert new_seeds([0, 1, 5], 4) == (2, 3, 4, 6)


def test_every_configuration_gets_every_seed(source):
    found = plan(source, top=2, seeds=2)
    assert found.points() == [{**B, "seed": 1}, {**B, "seed": 3}, {**A, "seed": 1}, {**A, "seed": 3}]


def test_more_configurations_than_finished_is_refused_with_the_counts(source):
    with pytest.raises(
        UsageError,
        match=r"--top 4: experiment .*src has 4 finished trials "
        r"\(3 distinct configurations\)",
    ):
        plan(source, top=4, seeds=2)


def test_fewer_than_two_seeds_is_refused(source):
    with pytest.raises(UsageError, match="--seeds 1: expected at least 2"):
        plan(source, top=1, seeds=1)


def test_a_space_edited_since_the_search_is_refused(source):
    space_file = source / "space.yaml"
    space_file.write_text(space_file.read_text().replace("batch_size: 128", "batch_size: 64"))
    with pytest.raises(
        UsageError, match="trial b1 trained with batch_size=128, but the experiment's space now gives 64"
    ):
        plan(source, top=1, seeds=2)


def test_the_plan_survives_the_settings_file_and_damage_is_one_line(source):
    found = plan(source, top=2, seeds=2)
    saved = json.loads(json.dumps(found.to_json()))
    assert ReplicatePlan.from_json(saved, where="x.json") == found
    for damaged, what in [
        ([], "expected a mapping"),
        ({**saved, "seeds": [1, "2"]}, "seeds: expected a list of integers"),
        ({**saved, "seeds": []}, "seeds: expected a list of integers"),
        ({**saved, "configurations": {}}, "configurations: expected a non-empty list"),
        ({**saved, "configurations": [{"params": {"seed": 3}}]}, "without seed"),
        ({**saved, "configurations": [{"params": {}, "source_trials": [1]}]}, "trial ids"),
        ({**saved, "source": 7}, "source: expected a path"),
    ]:
        with pytest.raises(UsageError, match=f"x.json: replicate: .*{what}"):
            ReplicatePlan.from_json(damaged, where="x.json")


def test_given_configurations_are_converted_checked_and_seeded():
    space = load_space("smoke")
    found = given_plan(
        space,
        [{"lookahead": "20"}, {"lookahead": "40", "layers": "8,8"}],
        seeds=3,
        where=["--config a", "--config b"],
    )
    assert [c.params for c in found.configurations] == [
        {"lookahead": 20},
        {"lookahead": 40, "layers": [8, 8]},
    ]
    assert found.seeds == (1, 2, 3)  # the space trains with seed 0
    assert found.source is None and found.configurations[1].label == "lookahead=40, layers=8,8"
    for config, message in [
        ({"lookahead": "x"}, "--config b: key 'lookahead' expected an integer"),
        ({"lookahed": "3"}, "--config b: unknown key 'lookahed'"),
        ({"seed": "3"}, "--config b: seed is set by --seeds"),
        ({"epochs": "3"}, "--config b: epochs is set by the budget"),
        ({"lookahead": "20"}, "--config b: the same configuration as an earlier one"),
    ]:
        with pytest.raises(UsageError, match=message):
            given_plan(space, [{"lookahead": "20"}, config], seeds=2, where=["--config a", "--config b"])


def test_config_text_keeps_list_values_whole():
    assert parse_config_text("lookahead=20,layers=16,16, lr = 0.001") == {
        "lookahead": "20",
        "layers": "16,16",
        "lr": "0.001",
    }
    for text, message in [
        ("lookahead", "expected KEY=VALUE"),
        ("lookahead=", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("a=1,a=2", "a given twice"),
    ]:
        with pytest.raises(UsageError, match=message):
            parse_config_text(text)


def test_the_smoke_search_replicates_its_two_best_configurations(smoke_experiment):
    """On a real search: the top two are its first two distinct ranked configurations,
    each trained before with the search's seed 0, and the trial config of a replicate
    is its source trial's but for the seed."""
    found = plan(smoke_experiment, top=2, seeds=2)
    ranked = [t for t in ranked_trials(load_experiment(smoke_experiment)) if "objective" in t.metrics]
    distinct = list({json.dumps(t.params, sort_keys=True): t.params for t in ranked}.values())
    assert [c.params for c in found.configurations] == distinct[:2]
    assert found.seeds == (1, 2)
    space = experiment_space(
        load_settings_json(str(smoke_experiment.parent), smoke_experiment.name), smoke_experiment
    )
    first = next(t for t in ranked if t.trial_id == found.configurations[0].source_trials[0])
    replicate = space.trial_config(found.points()[0]).to_dict()
    differing = {k for k, v in replicate.items() if first.config[k] != v}
    assert differing == {"seed", "device", "eval_csv"}


@pytest.mark.parametrize("kind", ["fifo", "deep", "too large"])
def test_a_settings_file_that_is_no_such_file_is_one_line(tmp_path, kind):
    import os

    from collatz_ray._bounded import MAX_JSON_BYTES

    path = tmp_path / "exp" / "collatz_search.json"
    path.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(path)  # read whole, this would hang
    elif kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    else:
        with open(path, "wb") as handle:
            handle.truncate(MAX_JSON_BYTES + 1)
    with pytest.raises(UsageError, match="collatz_search.json"):
        load_settings_json(str(tmp_path), "exp")
