"""The counterexample bank in a search: the Train worker's hook banks what each mining
round kept that violates, tagged with the trial and the epoch; a real search with mining
fills its experiment's bank, and the summary shows it. One search of one tiny trial;
training from a bank is tested without Ray (tests/trainer/test_bank.py, and
tests/search/test_bank_setting.py for a space that names one)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

from support.clitools import run_command
from support.searches import TUNE
from support.width import unwrapped

from collatz_ray.search.ray.worker import bank_hook
from collatz_ray.trainer import bank
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.loop import train

MINING = dict(
    layers=(8,),
    lookahead=5,
    batch_size=64,
    mine_negatives=True,
    mine_interval=10,
    mine_pool=256,
    mine_count=16,
)


def test_the_worker_hook_banks_each_round_s_violations_with_trial_and_epoch(tmp_path, eval_csv):
    path = tmp_path / bank.BANK_FILE
    config = TrainConfig(epochs=30, eval_interval=30, device="cpu", eval_csv=str(eval_csv), **MINING)
    train(config, run_dir=tmp_path / "run", on_mined=bank_hook(str(path), "trial1"), verbose=False)
    records = bank.read_bank(path, strict=True).records
    assert records and {r.source for r in records} == {"mining"} and {r.trial for r in records} == {"trial1"}
    by_epoch: dict[int, list] = {}
    for r in records:
        by_epoch.setdefault(r.epoch, []).append(r)
    assert set(by_epoch) <= {10, 20} and all(len(found) <= config.mine_count for found in by_epoch.values())
    assert all(r.margin is None or r.margin <= 0 for r in records)
    assert bank_hook(None, "trial1") is None  # remote storage: nothing banked


def test_a_bank_that_cannot_be_written_costs_the_records_not_the_trial(tmp_path, eval_csv, capsys):
    path = tmp_path / bank.BANK_FILE
    path.mkdir()  # a directory where the file should be
    config = TrainConfig(epochs=20, eval_interval=20, device="cpu", eval_csv=str(eval_csv), **MINING)
    metrics = train(config, run_dir=tmp_path / "run", on_mined=bank_hook(str(path), "trial1"), verbose=False)
    assert metrics["epoch"] == 20
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        "collatz-ray: trial trial1: the counterexamples mined at epoch 10 were not banked: "
        f"{path}: cannot open the counterexample bank"
    )


def search(tmp_path: Path, name: str, eval_csv: Path, fixed: dict) -> Path:
    space = tmp_path / f"{name}.yaml"
    space.write_text(
        textwrap.dedent(f"""\
        budget: {{epochs: 30, eval_interval: 30, grace_epochs: 30, reduction_factor: 2, num_samples: 1}}
        fixed: {json.dumps(fixed)}
        parameters:
          lr: {{values: [0.001]}}
        """)
    )
    proc = subprocess.run(
        [
            *TUNE,
            "--space",
            str(space),
            "--storage",
            str(tmp_path / "store"),
            "--name",
            name,
            "--eval-csv",
            str(eval_csv),
            "--max-concurrent",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "RAY_ADDRESS": "local"},
    )
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return tmp_path / "store" / name


def test_a_search_with_mining_fills_its_experiment_s_bank(tmp_path, eval_csv):
    experiment = search(tmp_path, "mined", eval_csv, {**MINING, "layers": [8]})
    (trial_dir,) = experiment.glob("collatz_trial_*")
    trial_id = trial_dir.name.removeprefix("collatz_trial_")
    records = bank.read_bank(experiment, strict=True).records
    assert records and {(r.source, r.trial) for r in records} == {("mining", trial_id)}
    assert {r.epoch for r in records} <= {10, 20}
    shown = run_command("results", experiment)
    assert shown.status == 0 and "Counterexample bank" in shown.stdout
    assert f"{len(records)} records of {len(bank.distinct(records))} distinct odd n" in unwrapped(
        shown.stdout
    )
