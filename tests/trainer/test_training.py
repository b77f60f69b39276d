"""The trainer (docs/method.md): defaults, batches, loss, mining, evaluation, and the
loop's promises (same seed -> same metrics, exact resume, divergence handling).

Every run here is a tiny real run: layers 16,16, batches of 64 to 128 rows, tens of
epochs, on the CPU, scored against the session's 500-row evaluation CSV."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from support.runs import read_metrics, without_timing

from collatz_ray.syracuse import arith, limbs
from collatz_ray.syracuse.features import FeatureSpec, extract
from collatz_ray.trainer import data
from collatz_ray.trainer import loss as loss_mod
from collatz_ray.trainer import metrics as registry
from collatz_ray.trainer.checkpoints import latest_checkpoint, load_checkpoint
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.data import BatchSampler, odd_walk, training_seeds
from collatz_ray.trainer.evalset_csv import load_evalset
from collatz_ray.trainer.evaluation import evaluate
from collatz_ray.trainer.loop import TrainingDiverged, _is_mining_epoch, _mine, train
from collatz_ray.trainer.loss import anchor_weight, lyapunov_loss
from collatz_ray.trainer.model import LyapunovMLP, build_model

CPU = torch.device("cpu")


def tiny(eval_csv: Path, **overrides) -> TrainConfig:
    base = dict(
        layers=(16, 16),
        epochs=30,
        eval_interval=10,
        batch_size=64,
        device="cpu",
        eval_csv=str(eval_csv),
        decay_start=5,
        decay_len=20,
    )
    base.update(overrides)
    return TrainConfig(**base)


def state_equal(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


# -- the method's constants ---------------------------------------------------------------------------


def test_spec_constants_are_the_defaults():
    c = TrainConfig()
    assert c.margin == 0.05
    assert c.lr == 1e-3
    assert c.batch_size == 1024
    assert c.hard_ratio == 0.25
    assert c.max_bits == 128
    assert c.decay_start == 1000
    assert c.decay_len == 5000
    assert c.min_anchor == 0
    assert c.start_seeds == 30
    assert c.ramp_len == 25000
    assert c.mine_interval == 5000
    assert c.mine_count == 50
    assert c.mine_pool == 5000
    assert c.lr_factor == 0.5
    assert c.lr_patience == 2000
    assert c.beta_init == 0.35
    assert c.lookahead == 10
    assert c.layers == (2048, 1024, 1024, 512, 512, 512, 256, 128, 64)
    assert c.test_seeds == (111, 27, 703, 26623, 626331)
    assert c.target_type == "fixed"
    assert (c.use_t1, c.use_t4, c.use_t8) == (True, False, False)
    assert c.curriculum is False and c.mine_negatives is False
    assert c.mine_start is None and c.first_mining_epoch == 5000
    assert c.num_hard_seeds is None
    # constants that live in code rather than in the config
    assert (data.HARD_WEIGHT_GROWTH, data.HARD_WEIGHT_DECAY) == (20.0, 2.0)
    assert (data.RANDOM_WEIGHT_GROWTH, data.RANDOM_WEIGHT_DECAY) == (10.0, 1.0)
    assert data.MINED_DIRECT_PROBABILITY == 0.3 and data.WALK_STEPS == 300
    assert data.MINED_KEEP == 1000 and data.MINING_HARD_RATIO == 0.5
    assert (loss_mod.T4_WEIGHT, loss_mod.T8_WEIGHT, loss_mod.ANCHOR_DECAY_BASE) == (0.5, 0.2, 0.001)


def test_optimizer_and_scheduler_are_the_spec_ones(eval_csv, tmp_path):
    c = tiny(eval_csv, epochs=3, eval_interval=3)
    train(c, run_dir=tmp_path, verbose=False)
    state = load_checkpoint(latest_checkpoint(tmp_path))
    group = state["optimizer"]["param_groups"][0]
    assert group["lr"] == 1e-3 and "amsgrad" in group and group["weight_decay"] == 0.01  # AdamW
    sched = state["scheduler"]
    assert sched["mode"] == "min" and sched["factor"] == 0.5 and sched["patience"] == 2000


@pytest.mark.parametrize(
    "epoch, expected",
    [
        (0, 1.0),
        (999, 1.0),
        (1000, 1.0),
        (3500, 0.001**0.5),
        (6000, 0.001),
        (100_000, 0.001),
    ],
)
def test_anchor_weight_schedule(epoch, expected):
    assert anchor_weight(epoch, TrainConfig()) == pytest.approx(expected, rel=1e-12)


def test_anchor_weight_with_a_floor():
    c = TrainConfig(min_anchor=0.2, decay_start=10, decay_len=100)
    assert anchor_weight(9, c) == 1.0
    assert anchor_weight(60, c) == pytest.approx(0.2 + 0.8 * 0.001**0.5)
    assert anchor_weight(110, c) == pytest.approx(0.2 + 0.8 * 0.001)
    assert anchor_weight(10_000, c) == pytest.approx(0.2 + 0.8 * 0.001)


# -- seeds and curriculum -----------------------------------------------------------------------


def test_training_seeds_are_the_49_hard_seeds_without_test_seeds():
    seeds = training_seeds(TrainConfig())
    assert len(seeds) == 49
    assert not set(seeds) & set(arith.DEFAULT_TEST_SEEDS)
    assert seeds == [s for s in arith.HARD_SEEDS if s not in arith.DEFAULT_TEST_SEEDS]
    assert seeds[:3] == [31, 41, 47]
    assert training_seeds(TrainConfig(num_hard_seeds=5)) == [31, 41, 47, 54, 55]
    assert len(training_seeds(TrainConfig(test_seeds=(27,)))) == 53


@pytest.mark.parametrize(
    "epoch, count", [(0, 30), (1, 30), (12_500, 39), (24_999, 48), (25_000, 49), (10**6, 49)]
)
def test_curriculum_active_seed_counts(epoch, count):
    sampler = BatchSampler(TrainConfig(curriculum=True), device=CPU)
    active = sampler.active_seeds(epoch)
    assert active == sampler.seeds[:count]
    assert int(30 + 19 * min(1, epoch / 25000)) == count


def test_without_curriculum_every_seed_is_active_and_start_can_exceed_the_seed_count():
    assert len(BatchSampler(TrainConfig(), device=CPU).active_seeds(0)) == 49
    small = BatchSampler(TrainConfig(curriculum=True, num_hard_seeds=10, ramp_len=100), device=CPU)
    assert len(small.active_seeds(0)) == 10
    ramp = BatchSampler(TrainConfig(curriculum=True, start_seeds=0, ramp_len=100), device=CPU)
    assert [len(ramp.active_seeds(e)) for e in (0, 1, 50, 99, 100)] == [0, 0, 24, 48, 49]


def test_empty_pool_falls_back_to_the_first_training_seed_not_a_test_seed():
    # start_seeds 0 at epoch 0 and nothing mined: the pool is empty.
    c = TrainConfig(curriculum=True, start_seeds=0, ramp_len=1000, batch_size=512, hard_ratio=1.0)
    sampler = BatchSampler(c, device=CPU)
    assert sampler.active_seeds(0) == []
    batch = sampler.draw_epochs([0])[0]
    values = limbs.to_ints(batch.values)
    walk31 = set(odd_walk(31))
    assert set(values) <= walk31
    assert len(set(values)) > 20  # it really walks 31's trajectory
    for test_seed in arith.DEFAULT_TEST_SEEDS:
        assert test_seed not in values
    assert 41 not in values  # on 27's trajectory before 31: the old fallback would give it


# -- batches --------------------------------------------------------------------------------


def test_random_rows_are_odd_with_the_spec_bit_lengths():
    c = TrainConfig(batch_size=4096, hard_ratio=0.0, max_bits=12)
    batch = BatchSampler(c, device=CPU).draw_epochs([3])[0]
    values = limbs.to_ints(batch.values)
    assert len(values) == 4096 and not bool(batch.is_hard.any())
    assert all(v % 2 == 1 for v in values)
    lengths = np.array([v.bit_length() for v in values])
    # b uniform in [2, max_bits - 4] and n in [2^b, 2^(b+1) - 1]: bit length b + 1 in [3, 9]
    counts = np.bincount(lengths, minlength=12)
    assert lengths.min() == 3 and lengths.max() == 9
    assert all(0.10 < counts[L] / 4096 < 0.19 for L in range(3, 10)), counts


def test_random_rows_at_128_bits():
    c = TrainConfig(batch_size=4096, hard_ratio=0.0)
    values = limbs.to_ints(BatchSampler(c, device=CPU).draw_epochs([0])[0].values)
    lengths = [v.bit_length() for v in values]
    assert min(lengths) == 3 and max(lengths) == 125
    assert all(v % 2 == 1 for v in values)
    # high bits are random too (not only the top limb set)
    assert len({v >> 64 for v in values if v.bit_length() > 100}) > 100


def test_hard_rows_come_first_from_the_active_seeds_walks():
    c = TrainConfig(batch_size=400, hard_ratio=0.25)
    sampler = BatchSampler(c, device=CPU)
    batch = sampler.draw_epochs([7])[0]
    hard_count = int(400 * 0.25)
    assert batch.is_hard.tolist() == [True] * hard_count + [False] * (400 - hard_count)
    values = limbs.to_ints(batch.values)
    allowed = set().union(*(odd_walk(s) for s in training_seeds(c)))
    assert set(values[:hard_count]) <= allowed
    assert all(v > 1 and v % 2 == 1 for v in values[:hard_count])


def test_curriculum_limits_the_hard_rows_to_active_seeds():
    c = TrainConfig(curriculum=True, start_seeds=2, ramp_len=10**6, batch_size=512, hard_ratio=1.0)
    values = limbs.to_ints(BatchSampler(c, device=CPU).draw_epochs([0])[0].values)
    assert set(values) <= set(odd_walk(31)) | set(odd_walk(41))


def test_row_weights_follow_growth_and_origin():
    c = TrainConfig(batch_size=1024, hard_ratio=0.5, max_bits=40)
    batch = BatchSampler(c, device=CPU).draw_epochs([11])[0]
    values = limbs.to_ints(batch.values)
    grows = [arith.syracuse(v) > v for v in values]
    expected = [
        (20.0 if g else 2.0) if hard else (10.0 if g else 1.0)
        for g, hard in zip(grows, batch.is_hard.tolist())
    ]
    assert batch.weight.tolist() == expected
    assert set(expected) == {20.0, 2.0, 10.0, 1.0}


def test_batch_fields_match_the_scalar_reference():
    c = TrainConfig(batch_size=64, lookahead=7, use_t4=True, use_t8=True)
    batch = BatchSampler(c, device=CPU).draw_epochs([2])[0]
    values = limbs.to_ints(batch.values)
    assert sorted(batch.rows) == [0, 1, 4, 8]
    for j in (0, 1, 4, 8):
        expected = extract([arith.syracuse_power(v, j) for v in values], 7)
        assert torch.allclose(batch.rows[j], expected, atol=1e-6)
    assert torch.allclose(
        batch.ln_n.double(), torch.tensor([math.log(v) for v in values], dtype=torch.float64), rtol=1e-6
    )
    assert torch.allclose(
        batch.drift.double(),
        torch.tensor([arith.drift(v, 7) for v in values], dtype=torch.float64),
        atol=1e-5,
    )


def test_batches_depend_only_on_seed_and_epoch():
    c = TrainConfig(batch_size=128)
    a = BatchSampler(c, device=CPU).draw_epochs([0, 1, 2])
    b = BatchSampler(c, device=CPU).draw_epochs([2])
    assert torch.equal(a[2].values[:, : b[0].values.shape[1]], b[0].values)
    assert not torch.equal(a[0].values, a[1].values)
    other = BatchSampler(c.replace(seed=1), device=CPU).draw_epochs([0])[0]
    assert limbs.to_ints(other.values) != limbs.to_ints(a[0].values)


def test_mined_numbers_are_used_directly_about_30_percent_of_the_time():
    c = TrainConfig(curriculum=True, start_seeds=0, ramp_len=10**6, batch_size=4000, hard_ratio=1.0)
    sampler = BatchSampler(c, device=CPU)
    start = 2**127 - 1  # a long trajectory: the walk has 301 odd values
    sampler.add_mined([start])
    values = limbs.to_ints(sampler.draw_epochs([0])[0].values)
    walk = odd_walk(start)
    assert len(walk) == 301 and set(values) <= set(walk)
    direct = sum(v == start for v in values) / len(values)
    assert 0.26 < direct < 0.34  # 0.3 + 0.7/301
    assert len(set(values)) > 250  # the walk is used beyond the start


def test_a_mined_even_number_is_made_odd_when_used_directly():
    c = TrainConfig(curriculum=True, start_seeds=0, ramp_len=10**6, batch_size=400, hard_ratio=1.0)
    sampler = BatchSampler(c, device=CPU)
    sampler.add_mined([2**100 + 6])
    values = limbs.to_ints(sampler.draw_epochs([0])[0].values)
    assert 2**100 + 7 in values and 2**100 + 6 not in values


def test_mined_pool_keeps_the_newest_1000():
    sampler = BatchSampler(TrainConfig(), device=CPU)
    sampler.add_mined(range(3, 1503, 2))  # 750
    sampler.add_mined(range(10_001, 11_001, 2))  # 500 more
    assert len(sampler.mined) == 1000
    assert sampler.mined[-1] == 10_999 and sampler.mined[0] == 3 + 2 * 250
    state = sampler.state_dict()
    fresh = BatchSampler(TrainConfig(), device=CPU)
    fresh.load_state_dict(state)
    assert fresh.mined == sampler.mined


def test_mining_keeps_the_lowest_margins(eval_csv):
    c = tiny(eval_csv, mine_negatives=True, mine_pool=300, mine_count=12, mine_interval=4)
    torch.manual_seed(0)
    model = build_model(c)
    sampler = BatchSampler(c, device=CPU)
    kept = _mine(model, sampler, 4, c)
    mined = sampler.mined
    assert len(mined) == 12 and list(kept) == mined
    pool = BatchSampler(c, device=CPU).draw_mining_pool(4)  # the pool _mine scored (nothing mined yet)
    assert len(pool) == 300 and int(pool.is_hard.sum()) == 150  # hard ratio 0.5 for the pool
    pool_values = limbs.to_ints(pool.values)
    with torch.no_grad():
        margins = (
            model(extract(pool_values, c.lookahead))
            - model(extract([arith.syracuse(v) for v in pool_values], c.lookahead))
        ).tolist()
    order = sorted(range(len(pool_values)), key=lambda i: margins[i])
    assert set(mined) <= set(pool_values) and len(set(mined)) == 12
    # the 12 lowest margins among distinct numbers (a value drawn twice counts once)
    distinct = list(dict.fromkeys(pool_values[i] for i in order))
    threshold = margins[pool_values.index(distinct[11])]
    assert all(margins[pool_values.index(v)] <= threshold + 1e-6 for v in mined)
    # What mining returns (and the bank records) is each number's margin V(n) - V(T n).
    assert all(abs(kept[v] - margins[pool_values.index(v)]) < 1e-5 for v in mined)


def test_mining_epochs():
    c = TrainConfig(mine_negatives=True, mine_interval=5)
    assert [e for e in range(21) if _is_mining_epoch(e, c)] == [5, 10, 15, 20]
    c = TrainConfig(mine_negatives=True, mine_interval=5, mine_start=7)
    assert [e for e in range(21) if _is_mining_epoch(e, c)] == [7, 12, 17]
    assert not any(_is_mining_epoch(e, TrainConfig(mine_interval=5)) for e in range(21))


# -- loss -----------------------------------------------------------------------------------


@pytest.mark.parametrize("target_type", ["fixed", "adaptive", "split"])
def test_loss_is_the_spec_formula(target_type):
    c = TrainConfig(
        batch_size=96,
        lookahead=6,
        use_t4=True,
        use_t8=True,
        target_type=target_type,
        decay_start=10,
        decay_len=100,
    )
    batch = BatchSampler(c, device=CPU).draw_epochs([0])[0]
    torch.manual_seed(1)
    model = build_model(c)
    with torch.no_grad():
        model.drift_param.fill_(0.8)
    epoch = 60
    got = lyapunov_loss(model, batch, epoch, c)

    values = limbs.to_ints(batch.values)
    with torch.no_grad():
        V = {
            j: model(extract([arith.syracuse_power(v, j) for v in values], 6)).double() for j in (0, 1, 4, 8)
        }
    ln = torch.tensor([math.log(v) for v in values], dtype=torch.float64)
    dr = torch.tensor([arith.drift(v, 6) for v in values], dtype=torch.float64)
    hard = batch.is_hard
    fixed = ln + 0.35 * dr
    adaptive = ln + 0.8 * dr
    target = {"fixed": fixed, "adaptive": adaptive, "split": torch.where(hard, adaptive, fixed)}[target_type]
    w = torch.tensor(
        [
            (20.0 if arith.syracuse(v) > v else 2.0) if h else (10.0 if arith.syracuse(v) > v else 1.0)
            for v, h in zip(values, hard.tolist())
        ],
        dtype=torch.float64,
    )

    def rank(a, b):
        return torch.clamp(0.05 - (a - b), min=0)

    terms = {
        "t1": torch.mean(w * rank(V[0], V[1])),
        "t4": 0.5 * torch.mean(rank(V[0], V[4])),
        "t8": 0.2 * torch.mean(rank(V[0], V[8])),
        "anchor": torch.mean((V[0] - target) ** 2),
    }
    assert all(float(terms[t]) > 0 for t in ("t1", "t4", "t8"))
    a_e = 0.001**0.5
    expected = terms["t1"] + terms["t4"] + terms["t8"] + a_e * terms["anchor"]
    assert got.item() == pytest.approx(float(expected), rel=1e-5)

    # Term by term, late in training where the anchor weight is 0.001 and the ranking terms
    # are not drowned by it.
    late = 10**6
    full = lyapunov_loss(model, batch, late, c).item()
    assert full == pytest.approx(
        float(sum(terms[t] for t in ("t1", "t4", "t8")) + 0.001 * terms["anchor"]), rel=1e-5
    )
    for flag, term in (("use_t1", "t1"), ("use_t4", "t4"), ("use_t8", "t8")):
        without = lyapunov_loss(model, batch, late, c.replace(**{flag: False})).item()
        assert full - without == pytest.approx(float(terms[term]), rel=1e-3, abs=1e-6), flag


def test_loss_only_computes_the_offsets_in_use():
    c = TrainConfig(batch_size=32)
    batch = BatchSampler(c, device=CPU).draw_epochs([0])[0]
    assert sorted(batch.rows) == [0, 1]
    c4 = TrainConfig(batch_size=32, use_t4=True)
    assert sorted(BatchSampler(c4, device=CPU).draw_epochs([0])[0].rows) == [0, 1, 4]
    c48 = TrainConfig(batch_size=32, use_t1=False, use_t4=True, use_t8=True)
    assert sorted(BatchSampler(c48, device=CPU).draw_epochs([0])[0].rows) == [0, 4, 8]


# -- the loop ---------------------------------------------------------------------------------


def _run(config: TrainConfig, run_dir: Path, **kw) -> dict:
    return train(config, run_dir=run_dir, verbose=False, **kw)


LOOP = dict(
    curriculum=True,
    start_seeds=3,
    ramp_len=20,
    mine_negatives=True,
    mine_interval=5,
    mine_pool=128,
    mine_count=8,
    num_hard_seeds=4,
    use_t4=True,
    target_type="split",
)


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(eval_csv, tmp_path):
    c = tiny(eval_csv, **LOOP)
    _run(c, tmp_path / "a")
    _run(c, tmp_path / "b")
    _run(c.replace(seed=1), tmp_path / "c")
    a, b, other = (read_metrics(tmp_path / d) for d in "abc")
    assert [m["epoch"] for m in a] == [10, 20, 30]
    assert without_timing(a) == without_timing(b)
    assert a[-1]["mined"] > 0
    assert without_timing(a) != without_timing(other)
    assert a[-1]["loss"] != other[-1]["loss"]
    wa = torch.load(tmp_path / "a" / "model.pth", weights_only=True)
    wb = torch.load(tmp_path / "b" / "model.pth", weights_only=True)
    wc = torch.load(tmp_path / "c" / "model.pth", weights_only=True)
    assert state_equal(wa, wb) and not state_equal(wa, wc)


def test_resume_continues_exactly(eval_csv, tmp_path):
    # Mining every 5 epochs from epoch 5, with only 4 seeds: the mined pool soon holds most
    # of the hard pool, and epoch 20 (the resume point) is itself a mining epoch.
    c = tiny(eval_csv, epochs=40, **LOOP)
    full = _run(c, tmp_path / "full")

    part = tmp_path / "part"
    _run(c.replace(epochs=30), part)
    # An interruption after epoch 30's evaluation but before its checkpoint survived:
    shutil.rmtree(part / "checkpoints" / "epoch_00000030")
    ckpt = latest_checkpoint(part)
    assert ckpt.name == "epoch_00000020"
    assert load_checkpoint(ckpt)["sampler"]["mined"]  # the pool matters at the resume point
    resumed = _run(c, part, resume_from=ckpt)

    assert without_timing([resumed]) == without_timing([full])
    rows_full, rows_part = read_metrics(tmp_path / "full"), read_metrics(part)
    assert [m["epoch"] for m in rows_part] == [10, 20, 30, 40]  # nothing recorded twice
    assert without_timing(rows_part) == without_timing(rows_full)
    assert state_equal(
        torch.load(tmp_path / "full" / "model.pth", weights_only=True),
        torch.load(part / "model.pth", weights_only=True),
    )
    s_full = load_checkpoint(latest_checkpoint(tmp_path / "full"))
    s_part = load_checkpoint(latest_checkpoint(part))
    assert s_full["epoch"] == s_part["epoch"] == 40
    assert s_full["sampler"] == s_part["sampler"]
    assert s_full["scheduler"] == s_part["scheduler"]
    opt_full, opt_part = s_full["optimizer"]["state"], s_part["optimizer"]["state"]
    assert opt_full.keys() == opt_part.keys()
    for k in opt_full:
        assert all(torch.equal(opt_full[k][name], opt_part[k][name]) for name in opt_full[k])


def test_resume_from_the_final_checkpoint_with_a_larger_budget(eval_csv, tmp_path):
    c = tiny(eval_csv, epochs=20)
    _run(c, tmp_path / "full")
    _run(c.replace(epochs=10), tmp_path / "part")
    _run(c, tmp_path / "part", resume_from=latest_checkpoint(tmp_path / "part"))
    assert without_timing(read_metrics(tmp_path / "part")) == without_timing(read_metrics(tmp_path / "full"))


def test_run_directory_layout_and_checkpoint_contents(eval_csv, tmp_path):
    c = tiny(eval_csv, epochs=30, eval_interval=10)
    seen = []
    metrics = train(
        c, run_dir=tmp_path, verbose=False, on_evaluation=lambda m, p: seen.append((m["epoch"], p))
    )
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "model.pth").is_file()
    assert TrainConfig.from_yaml(tmp_path / "config.yaml") == c
    assert [e for e, _ in seen] == [10, 20, 30]
    assert all(p.is_dir() for _, p in seen[-2:])
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == ["epoch_00000020", "epoch_00000030"]
    assert metrics["epoch"] == 30 and read_metrics(tmp_path)[-1]["epoch"] == 30

    state = load_checkpoint(latest_checkpoint(tmp_path))
    for key in ("config", "model", "optimizer", "scheduler", "sampler", "epoch"):
        assert key in state
    assert state["epoch"] == 30
    assert TrainConfig.from_dict(state["config"]) == c

    final = torch.load(tmp_path / "model.pth", weights_only=True)
    assert list(final) == [
        "drift_param",
        "net.0.weight",
        "net.0.bias",
        "net.2.weight",
        "net.2.bias",
        "net.4.weight",
        "net.4.bias",
    ]
    assert state_equal(final, state["model"])
    assert state_equal(final, torch.load(latest_checkpoint(tmp_path) / "model.pth", weights_only=True))
    model = LyapunovMLP(16, (16, 16))
    model.load_state_dict(final)  # plain strict load: the seed format


@pytest.mark.parametrize(
    "overrides",
    [
        dict(target_type="fixed"),
        dict(target_type="adaptive"),
        dict(target_type="split"),
        dict(use_t4=True),
        dict(use_t8=True, k_only=True),
        dict(use_t1=False, use_t4=True, use_t8=True, linear=True),
        dict(k_shifted=True, lookahead=3),
    ],
    ids=["fixed", "adaptive", "split", "t4", "t8-k_only", "t4t8-linear", "k_shifted"],
)
def test_loss_variants_train(eval_csv, tmp_path, overrides):
    c = tiny(eval_csv, epochs=12, eval_interval=12, decay_start=1000, **overrides)
    m = _run(c, tmp_path)
    assert math.isfinite(m["loss"]) and m["epoch"] == 12
    beta = torch.load(tmp_path / "model.pth", weights_only=True)["drift_param"].item()
    if c.target_type == "fixed":
        assert beta == torch.tensor(0.35).item()  # no gradient reaches beta: exactly its init
    else:
        assert beta != pytest.approx(0.35, abs=1e-6)  # beta is learned


def test_training_lowers_the_loss(eval_csv, tmp_path):
    c = tiny(eval_csv, epochs=80, eval_interval=20, batch_size=128, decay_start=10_000, lr=3e-3)
    _run(c, tmp_path)
    losses = [m["loss"] for m in read_metrics(tmp_path)]
    assert losses[-1] < losses[0]


# A linear V with lr 1e17 stays finite for two epochs (checkpointed) and overflows at
# epoch 4, for any seed: a real divergence with a good checkpoint behind it.
DIVERGING = dict(linear=True, lr=1e17, epochs=20, eval_interval=2)


def test_divergence_raises_and_keeps_the_last_checkpoint(eval_csv, tmp_path):
    c = tiny(eval_csv, **DIVERGING)
    with pytest.raises(TrainingDiverged) as info:
        _run(c, tmp_path)
    message = str(info.value)
    assert "epoch 4" in message and ("nan" in message or "inf" in message)
    kept = tmp_path / "checkpoints" / "epoch_00000002"
    assert str(kept) in message
    assert latest_checkpoint(tmp_path) == kept
    state = load_checkpoint(kept)
    assert state["epoch"] == 2
    model = build_model(c)
    model.load_state_dict(state["model"])
    model.load_state_dict(torch.load(kept / "model.pth", weights_only=True))
    assert not (tmp_path / "model.pth").exists()


def test_divergence_before_any_checkpoint_says_so(eval_csv, tmp_path):
    c = tiny(eval_csv, beta_init=1e30, epochs=20, eval_interval=5)
    with pytest.raises(TrainingDiverged, match=r"epoch 1\b.*no checkpoint"):
        _run(c, tmp_path)


def test_the_kept_checkpoint_is_really_good(eval_csv, tmp_path):
    c = tiny(eval_csv, **DIVERGING)
    with pytest.raises(TrainingDiverged, match="last good checkpoint kept at"):
        _run(c, tmp_path)
    model = build_model(c)
    model.load_state_dict(load_checkpoint(latest_checkpoint(tmp_path))["model"])
    with torch.no_grad():
        v = model(extract(arith.trajectory(27), c.lookahead))
    assert bool(torch.isfinite(v).all())
    for row in read_metrics(tmp_path):
        assert math.isfinite(row["margin_mean"])


# -- evaluation -------------------------------------------------------------------------------

EVAL_KEYS = [
    "traj_total_violations",
    "traj_total_steps",
    "traj_violation_rate",
    "pass_rate",
    "weighted_pass_rate",
    "growth_pass_rate",
    "growth_weighted_pass_rate",
    "growth_margin_mean",
    "growth_margin_min",
    "margin_mean",
    "margin_median",
    "margin_min",
    "margin_5pct",
    "eval_violations",
    "n_total",
    "n_growth",
]


def test_evaluation_has_every_metric_and_the_values_are_right(eval_csv):
    torch.manual_seed(4)
    model = LyapunovMLP(16, (16, 16))
    spec = FeatureSpec(10)
    evalset = load_evalset(eval_csv)
    m = evaluate(model, spec, test_seeds=arith.DEFAULT_TEST_SEEDS, evalset=evalset, device=CPU)
    for key in EVAL_KEYS:
        assert key in m, key
    for s in arith.DEFAULT_TEST_SEEDS:
        for suffix in ("violations", "length", "worst"):
            assert f"traj_{s}_{suffix}" in m

    # trajectories, recomputed from the scalar reference
    total = 0
    for s in arith.DEFAULT_TEST_SEEDS:
        traj = arith.trajectory(s)
        with torch.no_grad():
            v = model(extract(traj, 10)).double().numpy()
        margins = v[:-1] - v[1:]
        bad = margins <= 0
        assert m[f"traj_{s}_length"] == len(traj) - 1
        assert m[f"traj_{s}_violations"] == int(bad.sum())
        if bad.any():
            assert m[f"traj_{s}_worst"] == pytest.approx(float(margins[bad].min()), abs=1e-6)
        else:
            assert m[f"traj_{s}_worst"] is None
        total += int(bad.sum())
    assert m["traj_total_steps"] == 429
    assert m["traj_total_violations"] == total
    assert m["traj_violation_rate"] == pytest.approx(total / 429)

    # population, recomputed from the CSV
    n, t1 = evalset.n, evalset.t1
    with torch.no_grad():
        margin = (model(extract(n, 10)) - model(extract(t1, 10))).double().numpy()
    growth = np.array([b > a for a, b in zip(n, t1)])
    w = evalset.w_expansion
    passed = margin > 0
    assert m["n_total"] == 500 and m["n_growth"] == int(growth.sum()) > 0
    assert m["pass_rate"] == pytest.approx(100 * passed.mean())
    assert m["eval_violations"] == int((~passed).sum())
    assert m["weighted_pass_rate"] == pytest.approx(100 * (w * passed).sum() / w.sum())
    assert m["growth_pass_rate"] == pytest.approx(100 * passed[growth].mean())
    assert m["growth_weighted_pass_rate"] == pytest.approx(
        100 * (w[growth] * passed[growth]).sum() / w[growth].sum()
    )
    assert m["growth_margin_mean"] == pytest.approx(margin[growth].mean(), abs=1e-6)
    assert m["growth_margin_min"] == pytest.approx(margin[growth].min(), abs=1e-6)
    assert m["margin_mean"] == pytest.approx(margin.mean(), abs=1e-6)
    assert m["margin_median"] == pytest.approx(np.median(margin), abs=1e-6)
    assert m["margin_min"] == pytest.approx(margin.min(), abs=1e-6)
    assert m["margin_5pct"] == pytest.approx(np.percentile(margin, 5), abs=1e-6)


def test_metrics_of_a_run_name_its_test_seeds(eval_csv, tmp_path):
    c = tiny(eval_csv, epochs=5, eval_interval=5, test_seeds=(27, 97))
    m = _run(c, tmp_path)
    for key in EVAL_KEYS + ["epoch", "loss", "beta", "lr", "mined"]:
        assert key in m
    assert (
        m["traj_total_steps"]
        == m["traj_27_length"] + m["traj_97_length"]
        == 41 + len(arith.trajectory(97)) - 1
    )
    assert "traj_111_length" not in m
    # Every number a run reports is declared in the metric registry, with a value of its
    # kind: the results reader checks what the registry declares (epoch is the time
    # attribute, the evaluation set's digest an identifier).
    declared = {k: registry.metric_of(k) for k in m if k not in ("epoch", "eval_set_sha256")}
    assert [k for k, metric in declared.items() if metric is None] == []
    assert {
        k: metric.problem(m[k]) for k, metric in declared.items() if metric and metric.problem(m[k])
    } == {}
    assert 97 not in BatchSampler(c, device=CPU).seeds and 111 in BatchSampler(c, device=CPU).seeds
