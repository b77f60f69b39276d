"""The mined pool holds distinct numbers, the newest 1000 (docs/method.md §4): a number
mined again is not added twice but moves to the newest end; a round keeps mine_count
distinct numbers; the pool survives a checkpoint as it was."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from collatz_ray.syracuse import limbs
from collatz_ray.trainer.checkpoints import latest_checkpoint, load_checkpoint
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.data import MINED_KEEP, BatchSampler
from collatz_ray.trainer.loop import train

CPU = torch.device("cpu")


def sampler() -> BatchSampler:
    return BatchSampler(TrainConfig(), device=CPU)


def test_a_number_mined_again_is_not_added_twice_and_moves_to_the_newest_end():
    s = sampler()
    s.add_mined([101, 103, 105])
    s.add_mined([103, 107, 107])
    assert s.mined == [101, 105, 103, 107]


def test_the_pool_keeps_the_newest_1000_distinct_numbers():
    s = sampler()
    s.add_mined(range(3, 2 * MINED_KEEP + 3, 2))  # 1000 distinct: 3 ... 2001
    s.add_mined([3])  # the oldest, mined again: now the newest
    s.add_mined([5001, 5003])  # evicts the two oldest, 5 and 7, not 3
    assert len(s.mined) == MINED_KEEP == len(set(s.mined))
    assert s.mined[-3:] == [3, 5001, 5003]
    assert s.mined[0] == 9 and 5 not in s.mined and 7 not in s.mined


def test_repeated_rounds_no_longer_crowd_the_hard_rows():
    # Before, one number mined in every round held a growing share of the pool and of
    # the hard-row picks (61 of 200 entries after 4 rounds in a real run).
    c = TrainConfig(curriculum=True, start_seeds=0, ramp_len=10**6, batch_size=2000, hard_ratio=1.0)
    s = BatchSampler(c, device=CPU)
    for round_ in range(4):
        s.add_mined([2**61 - 1] + [2**70 + 2 * i + 1 for i in range(50 * round_, 50 * round_ + 49)])
    assert len(s.mined) == 197 and Counter(s.mined)[2**61 - 1] == 1
    values = limbs.to_ints(s.draw_epochs([0])[0].values)
    direct = sum(v == 2**61 - 1 for v in values) / len(values)
    assert direct < 0.01  # 0.3 / 197 expected, not 0.3 * 61 / 200


def test_the_pool_state_round_trips_and_an_old_pool_with_duplicates_loads_distinct():
    s = sampler()
    s.add_mined([11, 13, 15, 13])
    fresh = sampler()
    fresh.load_state_dict(s.state_dict())
    assert fresh.mined == s.mined == [11, 15, 13]
    legacy = sampler()
    legacy.load_state_dict({"mined": [11, 13, 11, 15, 13]})  # written before pools were distinct
    assert legacy.mined == [11, 15, 13]


def test_a_run_checkpoints_a_distinct_pool(eval_csv, tmp_path: Path):
    # Four seeds with short walks: hard rows repeat values, so the lowest margins of a
    # round often belong to the same number several times over.
    c = TrainConfig(
        layers=(8,),
        epochs=12,
        eval_interval=12,
        batch_size=64,
        device="cpu",
        eval_csv=str(eval_csv),
        num_hard_seeds=4,
        mine_negatives=True,
        mine_interval=4,
        mine_pool=256,
        mine_count=10,
    )
    train(c, run_dir=tmp_path, verbose=False)
    state = load_checkpoint(latest_checkpoint(tmp_path))
    mined = [int(v, 16) if isinstance(v, str) else v for v in state["sampler"]["mined"]]  # saved as hex
    # rounds at epochs 4 and 8 of ten distinct numbers each (the second may re-mine some)
    assert len(mined) == len(set(mined)) and 10 < len(mined) <= 20
    restored = BatchSampler(c, device=CPU)
    restored.load_state_dict(state["sampler"])
    assert restored.mined == mined
