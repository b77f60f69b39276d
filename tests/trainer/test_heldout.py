"""The held-out metrics beyond the log's (docs/method.md §8): unseen steps, computed from
the run's own training walks, and the pinned large-number trajectories."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from collatz_ray.syracuse.arith import DEFAULT_TEST_SEEDS, trajectory
from collatz_ray.syracuse.features import FeatureSpec, extract
from collatz_ray.trainer import heldout
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.data import odd_walk, training_seeds
from collatz_ray.trainer.evalset_csv import load_evalset
from collatz_ray.trainer.evaluation import evaluate
from collatz_ray.trainer.loop import train
from collatz_ray.trainer.model import LyapunovMLP
from collatz_ray.trainer.text import format_report

CPU = torch.device("cpu")


def test_with_the_default_seeds_158_of_the_429_steps_are_unseen():
    unseen = heldout.unseen_steps(DEFAULT_TEST_SEEDS, tuple(training_seeds(TrainConfig())))
    assert {s: len(steps) for s, steps in unseen.items()} == {111: 1, 27: 0, 703: 0, 26623: 0, 626331: 157}
    assert unseen[111] == {0} and unseen[626331] == set(range(157))


def test_unseen_steps_follow_the_runs_own_training_seeds():
    # One training seed, 31: only its walk is seen. Written out from the definition.
    c = TrainConfig(num_hard_seeds=1)
    walk = set(odd_walk(31))
    expected = sum(x not in walk for s in DEFAULT_TEST_SEEDS for x in trajectory(s)[:-1])
    got = heldout.unseen_steps(DEFAULT_TEST_SEEDS, tuple(training_seeds(c)))
    assert sum(map(len, got.values())) == expected == 429 - 128
    # 27 held out alone: 54's walk (a training seed now) contains all of 27's trajectory
    alone = heldout.unseen_steps((27,), tuple(training_seeds(TrainConfig(test_seeds=(27,)))))
    assert alone == {27: frozenset()}


def test_the_curriculum_does_not_change_which_steps_are_unseen():
    # Every seed the run can ever activate counts, also those a ramp reaches late.
    ramp = TrainConfig(curriculum=True, start_seeds=0, ramp_len=10**9)
    assert training_seeds(ramp) == training_seeds(TrainConfig())


def test_unseen_violations_count_the_violating_steps_that_are_unseen():
    metrics = {f"traj_{s}_violation_steps": [] for s in DEFAULT_TEST_SEEDS}
    metrics["traj_111_violation_steps"] = [0, 5]  # step 0 unseen, step 5 on a walk
    metrics["traj_626331_violation_steps"] = [3, 156, 157, 188]  # 3, 156 unseen
    assert heldout.unseen_metrics(metrics, TrainConfig()) == {
        "traj_unseen_violations": 3,
        "traj_unseen_steps": 158,
    }


def test_the_big_seeds_are_the_documented_draws_pinned_by_their_hash():
    seeds = heldout.big_seeds()
    rng = random.Random(429)
    expected = [rng.getrandbits(b) | 1 << (b - 1) | 1 for b in (256, 512, 1024) for _ in range(4)]
    assert list(seeds) == expected
    assert [s.bit_length() for s in seeds] == [256] * 4 + [512] * 4 + [1024] * 4
    assert all(s % 2 == 1 for s in seeds)


def test_a_changed_draw_is_refused(monkeypatch):
    heldout.big_seeds.cache_clear()
    monkeypatch.setattr(heldout, "BIG_RANDOM_SEED", 430)
    try:
        with pytest.raises(RuntimeError, match="large-number seeds changed"):
            heldout.big_seeds()
    finally:
        heldout.big_seeds.cache_clear()


def test_big_metrics_are_the_violations_along_the_big_trajectories():
    torch.manual_seed(3)
    model = LyapunovMLP(6 + 5, (8,))
    spec = FeatureSpec(5)
    got = heldout.big_metrics(model, spec, device=CPU)
    total_bad = total_steps = 0
    for bits in heldout.BIG_BITS:
        bad = steps = 0
        for s in (s for s in heldout.big_seeds() if s.bit_length() == bits):
            with torch.no_grad():
                v = model(extract(trajectory(s), 5)).double()
            bad += int(((v[:-1] - v[1:]) <= 0).sum())
            steps += len(v) - 1
        assert (got[f"traj_big_{bits}_violations"], got[f"traj_big_{bits}_steps"]) == (bad, steps)
        total_bad, total_steps = total_bad + bad, total_steps + steps
    assert (got["traj_big_violations"], got["traj_big_steps"]) == (total_bad, total_steps)
    assert total_steps == 17522 and 0 < total_bad < total_steps


def test_heldout_trajectories_give_v_step_by_step_as_the_metrics_count_it():
    torch.manual_seed(4)
    config = TrainConfig(layers=(8,), lookahead=5, test_seeds=(27, 703))
    model = LyapunovMLP(6 + 5, (8,))
    sets = heldout.heldout_trajectories(model, config, device=CPU)
    assert [t.seed for t in sets["log"]] == [27, 703]
    assert tuple(t.seed for t in sets["big"]) == heldout.big_seeds()
    for t in sets["log"] + sets["big"][:1]:
        values = trajectory(t.seed)
        with torch.no_grad():  # V from the reference features, one trajectory at a time
            v = model(extract(values, 5)).double().numpy()
        # float32 in other batches: the last bit may differ
        assert t.values == tuple(values) and t.v == pytest.approx(v, abs=1e-6)
        assert list(t.violation) == [bool(a - b <= 0) for a, b in zip(t.v, t.v[1:])]
        assert list(t.growth) == [b > a for a, b in zip(values, values[1:])]
    big = heldout.big_metrics(model, FeatureSpec(5), device=CPU)
    assert sum(int(t.violation.sum()) for t in sets["big"]) == big["traj_big_violations"]


def test_every_evaluation_of_a_run_records_them(eval_csv, tmp_path: Path):
    c = TrainConfig(
        layers=(8,), epochs=4, eval_interval=2, batch_size=32, device="cpu", eval_csv=str(eval_csv)
    )
    train(c, run_dir=tmp_path, verbose=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert row["traj_unseen_steps"] == 158 and 0 <= row["traj_unseen_violations"] <= 158
        assert row["traj_big_steps"] == 17522
        assert row["traj_big_violations"] == sum(row[f"traj_big_{b}_violations"] for b in (256, 512, 1024))
    report = format_report(rows[-1], c.test_seeds)
    assert f"unseen {rows[-1]['traj_unseen_violations']:>10}    158" in report
    assert f"large numbers: {rows[-1]['traj_big_violations']}/17522 (256 bits " in report


def test_the_report_of_older_metrics_has_no_heldout_lines(eval_csv):
    model = LyapunovMLP(16, (4,))
    m = evaluate(model, FeatureSpec(10), test_seeds=(27,), evalset=load_evalset(eval_csv), device=CPU)
    assert "unseen" not in format_report(m, (27,))
