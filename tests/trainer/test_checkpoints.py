"""A run directory's files on disk: checkpoints that cannot run code or pass corrupted,
checkpoints from before checksums, writes ordered so that a crash loses nothing, and a
run directory that is never overwritten unasked or shared by two runs."""

from __future__ import annotations

import fcntl
import glob
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from support.hostile import corrupt, hostile_checkpoint, snapshot
from support.runs import read_metrics, without_timing

from collatz_ray.errors import UsageError
from collatz_ray.trainer.checkpoints import (
    CHECKSUM_FILE,
    LOCK_FILE,
    latest_checkpoint,
    load_checkpoint,
    read_weights,
    resumable_checkpoint,
    torch_bytes,
)
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.data import BatchSampler
from collatz_ray.trainer.loop import train
from collatz_ray.trainer.model import build_model

OLD_LAYOUT = Path(__file__).resolve().parents[1] / "data" / "old_layout"


def one_line_error(call, *fragments: str) -> str:
    with pytest.raises(UsageError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


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
        mine_negatives=True,
        mine_interval=5,
        mine_pool=128,
        mine_count=8,
    )
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, eval_csv) -> tuple[TrainConfig, Path]:
    """A finished 30-epoch run (checkpoints at 20 and 30), read by the tests and copied
    by those that change it."""
    config = tiny(eval_csv)
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train(config, run_dir=run_dir, verbose=False)
    return config, run_dir


def copy_run(finished, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished[1], tmp_path / "run"))


# -- untrusted checkpoints never execute ---------------------------------------------------


@pytest.mark.parametrize("with_checksum", [False, True], ids=["no-checksum", "matching-checksum"])
def test_a_pickled_object_in_state_pt_is_refused_not_run(tmp_path, with_checksum):
    marker = tmp_path / "marker"
    checkpoint = hostile_checkpoint(tmp_path / "epoch_00000010", marker, with_checksum=with_checksum)
    one_line_error(lambda: load_checkpoint(checkpoint), "state.pt", "refused", "pickled object")
    one_line_error(lambda: read_weights(checkpoint), "state.pt", "refused")
    assert not marker.exists()
    # The file really is hostile: the unsafe load runs its code.
    torch.load(checkpoint / "state.pt", weights_only=False)
    assert marker.exists()


def test_checkpoint_state_loads_with_tensors_and_plain_data_only(finished):
    state = load_checkpoint(latest_checkpoint(finished[1]))  # weights_only=True throughout
    assert state["sampler"]["mined"] and all(isinstance(v, str) for v in state["sampler"]["mined"])
    assert isinstance(state["torch_rng"], torch.Tensor)


def test_mined_numbers_past_2040_bits_survive_a_checkpoint(eval_csv):
    sampler = BatchSampler(tiny(eval_csv, max_bits=4000), device=torch.device("cpu"))
    big = [2**3999 + 7, 3**2000, 27]
    sampler.add_mined(big)
    saved = torch.load(io.BytesIO(torch_bytes(sampler.state_dict())), weights_only=True)
    restored = BatchSampler(tiny(eval_csv, max_bits=4000), device=torch.device("cpu"))
    restored.load_state_dict(saved)
    assert restored.mined == big


def test_a_state_that_does_not_fit_the_run_is_one_line(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    checkpoint = latest_checkpoint(run_dir)
    state = load_checkpoint(checkpoint)
    state["optimizer"] = {"state": "nonsense"}
    (checkpoint / "state.pt").write_bytes(torch_bytes(state))
    (checkpoint / CHECKSUM_FILE).unlink()
    one_line_error(
        lambda: train(finished[0], run_dir=run_dir, resume_from=checkpoint, verbose=False),
        str(checkpoint),
        "does not fit this run",
    )


# -- checksums ---------------------------------------------------------------------------------


def test_every_checkpoint_carries_checksums_of_its_files(finished):
    for checkpoint in sorted((finished[1] / "checkpoints").iterdir()):
        digests = json.loads((checkpoint / CHECKSUM_FILE).read_text())["sha256"]
        assert sorted(digests) == ["model.pth", "state.pt"]
        assert resumable_checkpoint(finished[1]) == (latest_checkpoint(finished[1]), [])


def test_a_corrupted_checkpoint_is_refused_naming_the_previous_intact_one(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    newest, previous = run_dir / "checkpoints" / "epoch_00000030", run_dir / "checkpoints" / "epoch_00000020"
    corrupt(newest / "state.pt")
    message = one_line_error(
        lambda: load_checkpoint(newest),
        f"{newest / 'state.pt'}: checksum mismatch",
        f"the previous checkpoint {previous} is intact",
        f"train --resume {run_dir} falls back to it",
    )
    assert message.startswith(str(newest / "state.pt"))
    assert resumable_checkpoint(run_dir) == (
        previous,
        [f"{newest / 'state.pt'}: checksum mismatch (corrupted?)"],
    )
    # model.pth is checked the same way, by evaluate's reader too
    corrupt(previous / "model.pth")
    one_line_error(
        lambda: read_weights(previous / "model.pth"),
        "model.pth: checksum mismatch",
        "no earlier checkpoint beside it is intact",
    )
    assert resumable_checkpoint(run_dir)[0] is None


def test_a_resume_from_the_previous_checkpoint_repeats_the_run_exactly(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    corrupt(run_dir / "checkpoints" / "epoch_00000030" / "state.pt")
    checkpoint, _ = resumable_checkpoint(run_dir)
    train(finished[0], run_dir=run_dir, resume_from=checkpoint, verbose=False)
    assert without_timing(read_metrics(run_dir)) == without_timing(read_metrics(finished[1]))
    assert resumable_checkpoint(run_dir) == (run_dir / "checkpoints" / "epoch_00000030", [])


def test_a_model_pth_outside_a_checkpoint_is_not_checked_against_someone_elses_checksum_json(
    finished, tmp_path
):
    shutil.copy(finished[1] / "model.pth", tmp_path / "model.pth")
    (tmp_path / CHECKSUM_FILE).write_text('{"md5": "a download tool wrote this"}')
    weights, saved = read_weights(tmp_path / "model.pth")
    assert saved is None and "drift_param" in weights


@pytest.mark.parametrize("state_pt", sorted(glob.glob(str(OLD_LAYOUT / "**" / "state.pt"), recursive=True)))
def test_checkpoints_from_before_checksums_still_load(state_pt):
    checkpoint = Path(state_pt).parent
    assert not (checkpoint / CHECKSUM_FILE).exists()
    state = load_checkpoint(checkpoint)
    config = TrainConfig.from_dict(state["config"])
    model = build_model(config)
    model.load_state_dict(state["model"])
    weights, saved = read_weights(checkpoint)
    assert saved == state["config"] and weights.keys() == state["model"].keys()
    sampler = BatchSampler(config, device=torch.device("cpu"))
    sampler.load_state_dict(state["sampler"])  # integers then, hex strings now
    assert sampler.mined == [int(v) for v in state["sampler"]["mined"]]


# -- nothing computed is lost ------------------------------------------------------------------


def test_a_crash_between_metrics_line_and_rename_loses_nothing(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    # What a crash leaves after epoch 30's line went to metrics.jsonl and before its
    # checkpoint was renamed into place.
    (run_dir / "checkpoints" / "epoch_00000030").rename(run_dir / "checkpoints" / ".partial_00000030")
    (run_dir / "model.pth").unlink()
    assert [m["epoch"] for m in read_metrics(run_dir)] == [10, 20, 30]  # the evaluation is on disk
    checkpoint, _ = resumable_checkpoint(run_dir)
    assert checkpoint.name == "epoch_00000020"
    train(finished[0], run_dir=run_dir, resume_from=checkpoint, verbose=False)
    assert without_timing(read_metrics(run_dir)) == without_timing(read_metrics(finished[1]))
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch_00000020", "epoch_00000030"]


def test_a_metrics_line_cut_short_by_a_crash_is_dropped_on_resume(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    config = finished[0].replace(epochs=40)
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"traj_111_violations": 3, "traj_111_len')  # epoch 40's line, torn
    train(config, run_dir=run_dir, resume_from=latest_checkpoint(run_dir), verbose=False)
    assert [m["epoch"] for m in read_metrics(run_dir)] == [10, 20, 30, 40]


def test_a_damaged_line_inside_metrics_is_refused_not_dropped(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    (run_dir / "metrics.jsonl").write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    before = snapshot(run_dir)
    one_line_error(
        lambda: train(
            finished[0].replace(epochs=40),
            run_dir=run_dir,
            resume_from=latest_checkpoint(run_dir),
            verbose=False,
        ),
        "metrics.jsonl: line 2 is not an evaluation",
    )
    assert snapshot(run_dir) == before


def test_metrics_lines_are_strict_json(finished):
    for line in (finished[1] / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"bare {name} in metrics.jsonl"))


# -- run directories ---------------------------------------------------------------------------


def test_a_new_run_never_lands_on_an_old_one_unasked(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    before = snapshot(run_dir)
    one_line_error(
        lambda: train(finished[0], run_dir=run_dir, verbose=False),
        f"{run_dir}: holds a run already",
        "--resume",
        "--overwrite",
    )
    assert snapshot(run_dir) == before


def test_overwrite_clears_the_old_run_first(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    (run_dir / "exported_from.json").write_text("{}")
    (run_dir / "notes.txt").write_text("mine")
    train(finished[0].replace(epochs=10), run_dir=run_dir, overwrite=True, verbose=False)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch_00000010"]
    assert [m["epoch"] for m in read_metrics(run_dir)] == [10]
    assert not (run_dir / "exported_from.json").exists() and (run_dir / "notes.txt").read_text() == "mine"


def test_overwrite_refused_with_bad_input_keeps_the_old_run(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    before = snapshot(run_dir)
    one_line_error(
        lambda: train(
            finished[0].replace(eval_csv=str(tmp_path / "absent.csv")),
            run_dir=run_dir,
            overwrite=True,
            verbose=False,
        ),
        "absent.csv",
    )
    assert snapshot(run_dir) == before


def test_a_run_directory_in_use_is_refused(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    before = snapshot(run_dir)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT)  # another holder (its own open file)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        for overwrite in (False, True):
            one_line_error(
                lambda: train(finished[0], run_dir=run_dir, overwrite=overwrite, verbose=False),
                f"run directory {run_dir} is in use by ",
            )
        one_line_error(
            lambda: train(
                finished[0], run_dir=run_dir, resume_from=latest_checkpoint(run_dir), verbose=False
            ),
            "is in use by ",
        )
    finally:
        os.close(fd)
    assert snapshot(run_dir) == {**before, LOCK_FILE: b""}
