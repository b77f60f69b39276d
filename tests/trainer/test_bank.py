"""The counterexample bank (trainer/bank.py): appends from concurrent processes stay whole
lines, a torn last line is skipped and cut off by the next append, a damaged line is a
note for the summary and one refusing line for training, sightings merge by n; and a
run given a bank trains on its numbers, keeps them across a resume, and reports what its
mining rounds found through on_mined."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from support.runs import tiny_config

from collatz_ray.errors import UsageError
from collatz_ray.syracuse import limbs
from collatz_ray.syracuse.arith import DECIMAL_MAX_BITS, trajectory
from collatz_ray.trainer import bank
from collatz_ray.trainer.checkpoints import latest_checkpoint, load_checkpoint
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.data import BatchSampler, odd_walk, training_seeds
from collatz_ray.trainer.loop import train

REPO = Path(__file__).resolve().parents[2]

#: Appends BATCHES batches of PER_BATCH records of ~3000-digit numbers, each batch's
#: records tagged with the writer and the batch, so the reader can see them contiguous.
WRITER = """
import sys
from pathlib import Path
from collatz_ray.trainer import bank
path, tag, batches, per_batch = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for b in range(batches):
    bank.append_records(path, [bank.new_record(10**3000 + 2 * (b * per_batch + i) + 1, margin=-0.5,
                                       source="mining", trial=f"{tag}-{b}", epoch=i)
                       for i in range(per_batch)])
"""


def writer(path: Path, tag: str, batches: int, per_batch: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), tag, str(batches), str(per_batch)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_appending_at_once_leave_whole_contiguous_batches(tmp_path):
    path = tmp_path / bank.BANK_FILE
    procs = [writer(path, tag, 150, 5) for tag in ("a", "b")]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    read = bank.read_bank(path, strict=True)
    assert read.notes == [] and len(read.records) == 2 * 150 * 5
    lines = path.read_text().splitlines()
    assert all(json.loads(line)["n"].startswith("1000") for line in lines)
    # Each batch's five lines are adjacent: appends never interleave.
    trials = [r.trial for r in read.records]
    for start in range(0, len(trials), 5):
        assert len(set(trials[start : start + 5])) == 1 and [
            r.epoch for r in read.records[start : start + 5]
        ] == list(range(5))


def test_an_append_waits_for_the_lock_on_the_file(tmp_path):
    path = tmp_path / bank.BANK_FILE
    bank.append_records(path, [bank.new_record(7, margin=-0.1, source="verify")])
    with open(path, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = writer(path, "w", 1, 2)
        time.sleep(2.0)
        assert len(path.read_text().splitlines()) == 1  # the writer waits on the lock
        fcntl.flock(held, fcntl.LOCK_UN)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    assert len(bank.read_bank(path, strict=True).records) == 3


def test_a_torn_last_line_is_skipped_and_cut_off_by_the_next_append(tmp_path):
    path = tmp_path / bank.BANK_FILE
    bank.append_records(path, [bank.new_record(n, margin=-0.1, source="mining") for n in (11, 13)])
    with open(path, "ab") as f:
        f.write(b'{"n": "15", "margin": -0.')  # a writer that died mid-line
    for strict in (True, False):
        read = bank.read_bank(path, strict=strict)
        assert [r.n for r in read.records] == [11, 13]
    assert bank.read_bank(path, strict=False).notes == [
        f"{path}: skipped the last line, cut short or being written"
    ]
    bank.append_records(path, [bank.new_record(17, margin=-0.2, source="mining")])
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == ["11", "13", "17"]
    assert bank.read_bank(path, strict=False).notes == []


def test_a_complete_last_record_without_its_newline_is_kept(tmp_path):
    path = tmp_path / bank.BANK_FILE
    path.write_text(json.dumps({"n": "21", "margin": -0.3, "source": "verify"}))  # edited by hand
    assert [r.n for r in bank.read_bank(path, strict=True).records] == [21]
    bank.append_records(path, [bank.new_record(23, margin=None, source="mining")])
    assert [r.n for r in bank.read_bank(path, strict=True).records] == [21, 23]


@pytest.mark.parametrize(
    "line, why",
    [
        ("not json at all", "not JSON"),
        ('["n", "27"]', "not a JSON object"),
        ('{"n": 27, "margin": -0.1, "source": "verify"}', "n is 27"),
        ('{"n": "28", "margin": -0.1, "source": "verify"}', "n is '28'"),
        ('{"n": "1", "margin": -0.1, "source": "verify"}', "n is '1'"),
        ('{"n": "-27", "margin": -0.1, "source": "verify"}', "n is '-27'"),
        (
            json.dumps({"n": str(2 ** (DECIMAL_MAX_BITS + 1) + 1), "margin": -0.1, "source": "verify"}),
            "n is '",
        ),
        ('{"n": "27", "margin": "low", "source": "verify"}', "margin is 'low'"),
        ('{"n": "27", "margin": true, "source": "verify"}', "margin is True"),
        ('{"n": "27", "margin": -0.1, "source": "guess"}', "source is 'guess'"),
        ('{"n": "27", "margin": -0.1, "source": "verify", "epoch": -3}', "epoch is -3"),
        ('{"n": "27", "margin": -0.1, "source": "verify", "sha256": "abc"}', "sha256 is 'abc'"),
        ('{"n": "27", "margin": -0.1, "source": "verify", "trial": 5}', "trial or time is not text"),
        ("[" * 30_000 + "]" * 30_000, "nested too deep"),  # json.loads: RecursionError
    ],
    ids=[
        "text",
        "list",
        "n-number",
        "n-even",
        "n-one",
        "n-negative",
        "n-too-large",
        "margin-text",
        "margin-bool",
        "source",
        "epoch",
        "sha256",
        "trial",
        "deep",
    ],
)
def test_a_damaged_line_is_a_note_for_the_summary_and_one_line_for_training(tmp_path, line, why):
    path = tmp_path / bank.BANK_FILE
    bank.append_records(path, [bank.new_record(31, margin=-0.1, source="verify")])
    with open(path, "a") as f:
        f.write(line + "\n")
    bank.append_records(path, [bank.new_record(33, margin=-0.2, source="mining")])
    lenient = bank.read_bank(path, strict=False)
    assert [r.n for r in lenient.records] == [31, 33]  # the rest is kept
    (note,) = lenient.notes
    assert (
        note.startswith(f"{path}: line 2 is not a counterexample record ({why}")
        and "expected one JSON" in note
    )
    with pytest.raises(UsageError) as refused:
        bank.ranked_numbers(path)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{path}: line 2 is not a counterexample record")
    assert len(message) < 400


def test_a_missing_or_oversized_bank_is_one_line(tmp_path):
    for missing in (tmp_path / "nowhere", tmp_path):  # a file, an experiment without a bank
        with pytest.raises(UsageError, match="no counterexample bank here; expected an experiment directory"):
            bank.ranked_numbers(missing)
    assert bank.read_bank(tmp_path, strict=False).records == []
    huge = tmp_path / "huge.jsonl"
    with open(huge, "wb") as f:
        f.truncate(bank.MAX_BANK_BYTES + 1)  # sparse: its size is what is refused
    with pytest.raises(UsageError, match=f"{huge}: 67,108,865 bytes, more than the 67,108,864"):
        bank.ranked_numbers(huge)
    assert "more than the" in bank.read_bank(huge, strict=False).notes[0]


def test_an_overlong_line_is_passed_over_and_a_fifo_is_no_bank(tmp_path):
    path = tmp_path / bank.BANK_FILE
    bank.append_records(path, [bank.new_record(31, margin=-0.1, source="verify")])
    with open(path, "a") as f:
        f.write('{"n": "27", "trial": "' + "x" * bank.MAX_LINE_BYTES + '"}\n')
    bank.append_records(path, [bank.new_record(33, margin=-0.2, source="mining")])
    lenient = bank.read_bank(path, strict=False)
    assert [r.n for r in lenient.records] == [31, 33]
    assert lenient.notes == [
        f"{path}: line 2 is longer than {bank.MAX_LINE_BYTES:,} bytes; expected {bank.EXPECTED}"
    ]
    with pytest.raises(UsageError, match="line 2 is longer than"):
        bank.ranked_numbers(path)
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)  # no writer: reading it must not wait for one
    with pytest.raises(UsageError, match="not a regular file"):
        bank.ranked_numbers(fifo)


def test_sightings_merge_by_n_worst_margin_first(tmp_path):
    path = tmp_path / bank.BANK_FILE
    sha = "ab" * 32
    bank.append_records(
        path,
        [
            bank.new_record(101, margin=-0.1, source="verify", sha256=sha),
            bank.new_record(101, margin=-0.3, source="mining", trial="t1", epoch=5),
            bank.new_record(105, margin=-0.05, source="mining", trial="t1", epoch=5),
            bank.new_record(103, margin=float("nan"), source="mining", trial="t2", epoch=10),
        ],
    )
    # A trial restarted from its checkpoint mines epoch 5 again: the same sighting.
    bank.append_records(path, [bank.new_record(101, margin=-0.3, source="mining", trial="t1", epoch=5)])
    entries = bank.distinct(bank.read_bank(path, strict=True).records)
    assert [(e.n, e.worst.margin, e.times, e.sources) for e in entries] == [
        (103, None, 1, ("mining",)),
        (101, -0.3, 2, ("verify", "mining")),
        (105, -0.05, 1, ("mining",)),
    ]
    assert entries[1].worst.trial == "t1" and entries[1].worst.epoch == 5
    assert bank.ranked_numbers(tmp_path) == [103, 101, 105]
    assert bank.recorded(path, source="verify", sha256=sha) == {101}


def test_new_records_hold_only_what_decimal_text_can_carry():
    assert bank.bankable(3) and bank.bankable(2**DECIMAL_MAX_BITS - 1)
    assert not any(bank.bankable(n) for n in (1, 2, 10, 2**DECIMAL_MAX_BITS + 1))
    with pytest.raises(ValueError):
        bank.new_record(2**DECIMAL_MAX_BITS + 1, margin=-1.0, source="mining")
    assert bank.new_record(9, margin=float("-inf"), source="verify").margin is None


# -- training from a bank ------------------------------------------------------------------------
def small_config(eval_csv: Path, **changes) -> TrainConfig:
    return tiny_config(
        eval_csv,
        batch_size=256,
        num_hard_seeds=2,
        hard_ratio=1.0,
        **changes,
    )


def test_a_run_trains_on_banked_numbers_and_keeps_them_across_a_resume(tmp_path, eval_csv):
    big = 2**100 + 1
    path = tmp_path / "exp" / bank.BANK_FILE
    path.parent.mkdir()
    on_27 = 107  # a step of a held-out trajectory
    assert on_27 in trajectory(27)
    bank.append_records(
        path,
        [
            bank.new_record(27, margin=-0.9, source="verify"),  # a test seed
            bank.new_record(on_27, margin=-0.8, source="verify"),
            bank.new_record(31, margin=-0.7, source="verify"),  # a training seed
            bank.new_record(big, margin=-0.5, source="mining", trial="t", epoch=4),
            bank.new_record(1001, margin=-0.2, source="mining", trial="t", epoch=4),
            bank.new_record(12345, margin=None, source="mining", trial="t", epoch=8),
            bank.new_record(999, margin=-0.1, source="mining", trial="t", epoch=8),
        ],
    )
    config = small_config(eval_csv, hard_seed_bank=str(path.parent), hard_seed_bank_count=3)
    assert 31 in training_seeds(config)
    run = tmp_path / "run"
    train(config, run_dir=run, verbose=False)
    state = load_checkpoint(latest_checkpoint(run))
    banked = [int(v, 16) for v in state["sampler"]["banked"]]
    # Worst first, the test trajectory's values and the training seeds left out, three kept.
    assert banked == [12345, big, 1001]

    sampler = BatchSampler(config, device=torch.device("cpu"))
    sampler.load_state_dict(state["sampler"])
    assert sampler.banked == banked
    values = limbs.to_ints(sampler.draw_epochs([0])[0].values)
    from_bank = set(banked).union(*(odd_walk(n) for n in banked))
    assert sum(v in from_bank for v in values) > len(values) // 4  # 3 of 5 pool entries are banked

    path.unlink()  # a resumed run keeps the numbers it started with
    train(config.replace(epochs=4), run_dir=run, resume_from=latest_checkpoint(run), verbose=False)
    resumed = load_checkpoint(latest_checkpoint(run))
    assert resumed["epoch"] == 4 and [int(v, 16) for v in resumed["sampler"]["banked"]] == banked


def test_a_run_without_a_bank_draws_as_before(tmp_path, eval_csv):
    config = small_config(eval_csv)
    sampler = BatchSampler(config, device=torch.device("cpu"))
    assert sampler.banked == [] and sampler.state_dict()["banked"] == []
    sampler.load_state_dict({"mined": []})  # a checkpoint from before the bank
    assert sampler.banked == []


def test_a_missing_or_damaged_bank_stops_the_run_before_it_trains(tmp_path, eval_csv):
    with pytest.raises(UsageError, match="no counterexample bank here"):
        train(
            small_config(eval_csv, hard_seed_bank=str(tmp_path / "gone")),
            run_dir=tmp_path / "a",
            verbose=False,
        )
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text('{"n": "27", "margin": -0.1, "source": "verify"}\n{"n": "28"}\n')
    with pytest.raises(UsageError, match="line 2 is not a counterexample record"):
        train(small_config(eval_csv, hard_seed_bank=str(damaged)), run_dir=tmp_path / "b", verbose=False)
    assert latest_checkpoint(tmp_path / "a") is None and latest_checkpoint(tmp_path / "b") is None


def test_mining_rounds_report_the_kept_numbers_that_violate(tmp_path, eval_csv):
    calls = []
    config = TrainConfig(
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
    train(config, run_dir=tmp_path, verbose=False, on_mined=lambda epoch, found: calls.append((epoch, found)))
    assert calls and {epoch for epoch, _ in calls} <= {4, 8}
    mined = {int(v, 16) for v in load_checkpoint(latest_checkpoint(tmp_path))["sampler"]["mined"]}
    for _, found in calls:
        assert 1 <= len(found) <= config.mine_count and len({n for n, _ in found}) == len(found)
        assert all(margin is None or margin <= 0 for _, margin in found)
        assert {n for n, _ in found} <= mined
