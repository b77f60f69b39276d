"""A model from anything a user has on disk (collatz_ray.trainer.loading): checkpoint
directories and state.pt files, run directories (finished or still training), and
seed-format files whose shape comes from the flags."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from collatz_ray.errors import UsageError
from collatz_ray.trainer.checkpoints import latest_checkpoint
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.loading import load_model
from collatz_ray.trainer.loop import train


@pytest.fixture(scope="module")
def run(tmp_path_factory, eval_csv) -> Path:
    run_dir = tmp_path_factory.mktemp("loading") / "run"
    train(
        TrainConfig(
            layers=(6,),
            lookahead=4,
            epochs=2,
            eval_interval=1,
            batch_size=16,
            device="cpu",
            eval_csv=str(eval_csv),
        ),
        run_dir=run_dir,
        verbose=False,
    )
    return run_dir


def weights_equal(a: torch.nn.Module, b: dict) -> bool:
    return all(torch.equal(v, b[k]) for k, v in a.state_dict().items())


def test_every_form_of_a_run_gives_the_same_model(run):
    final = torch.load(run / "model.pth", weights_only=True)
    newest = latest_checkpoint(run)
    for path, file in (
        (run, newest / "state.pt"),
        (newest, newest / "state.pt"),
        (newest / "state.pt", newest / "state.pt"),
    ):
        loaded = load_model(path, overrides={})
        assert loaded.file == file
        assert loaded.config.layers == (6,) and loaded.config.lookahead == 4  # no flags needed
        assert weights_equal(loaded.model, final)


def test_a_run_still_training_is_read_from_its_newest_checkpoint(run, tmp_path):
    running = Path(shutil.copytree(run, tmp_path / "running"))
    (running / "model.pth").unlink()
    loaded = load_model(running, overrides={})
    assert loaded.file == latest_checkpoint(running) / "state.pt"


def test_a_run_without_checkpoints_is_read_from_model_pth_with_its_config_yaml(run, tmp_path):
    bare = Path(shutil.copytree(run, tmp_path / "bare"))
    shutil.rmtree(bare / "checkpoints")
    loaded = load_model(bare, overrides={})
    assert loaded.file == bare / "model.pth" and loaded.config_file == bare / "config.yaml"
    assert loaded.config.layers == (6,)


def test_a_seed_format_file_takes_its_shape_from_the_flags(run):
    loaded = load_model(run / "model.pth", overrides={"layers": "6", "lookahead": "4"})
    assert loaded.config.layers == (6,)
    with pytest.raises(UsageError, match="--checkpoint .*model.pth"):
        load_model(run / "model.pth", overrides={})  # the default (published) stack


def test_a_directory_with_nothing_to_read_is_refused_in_one_line(tmp_path):
    with pytest.raises(UsageError) as info:
        load_model(tmp_path, overrides={}, flag="--checkpoint")
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)
