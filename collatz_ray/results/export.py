"""--export-best DIR: the best trial of a search as a run directory of the plain trainer.

A search's winner is only useful if it can be trained again, trained further or
evaluated without Ray. DIR gets the layout `collatz_ray.train` writes itself, so every
existing tool takes it as it is:

    DIR/config.yaml                          the trial's full TrainConfig, but `device: auto`
    DIR/checkpoints/epoch_XXXXXXXX/          state.pt + model.pth (+ checksum.json) of the
                                             trial's newest reported checkpoint
    DIR/metrics.jsonl                        the trial's evaluations up to that epoch
    DIR/model.pth                            the same weights, seed format
    DIR/exported_from.json                   experiment, trial, parameters, epoch
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import yaml

from collatz_ray.errors import UsageError
from collatz_ray.results.read import Experiment, Trial, trainer_metrics
from collatz_ray.results.report import best_trial
from collatz_ray.search.settings import TRAIN_DIR
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.text import strict_json

CHECKPOINT_FILES = ("state.pt", "model.pth")
#: Copied along when the checkpoint has one (written since checksums exist). The name is
#: trainer.checkpoints.CHECKSUM_FILE, not imported: that module loads torch.
CHECKSUM_FILE = "checksum.json"


def export_best(exp: Experiment, out: Path, *, say: Callable[[str], None]) -> None:
    """Write the best trial into `out` (new or empty) and say how to use it."""
    best = best_trial(exp)
    if best is None:
        raise UsageError(f"{exp.path}: no trial has reported a result yet; nothing to export")
    if best.config is None:
        raise UsageError(f"{best.path}: no train_config.json; cannot export trial {best.trial_id}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--export-best {out}: exists and is not an empty directory")
    # The trial's device is the one its search gave it (cpu on a CPU-only cluster): the
    # exported run takes a GPU wherever it is resumed or re-run, if there is one.
    config = TrainConfig.from_dict(best.config, source=f"{best.path}/train_config.json").replace(
        device="auto"
    )
    source, epoch = newest_checkpoint(exp, best)
    checkpoint = out / "checkpoints" / f"epoch_{epoch:08d}"
    checkpoint.mkdir(parents=True)
    for name in CHECKPOINT_FILES + ((CHECKSUM_FILE,) if (source / CHECKSUM_FILE).is_file() else ()):
        shutil.copy2(source / name, checkpoint / name)
    shutil.copy2(source / "model.pth", out / "model.pth")
    _write_records(out, exp, best, config, source, epoch)
    _say_usage(say, out, checkpoint, config, best, epoch)


def _write_records(
    out: Path, exp: Experiment, trial: Trial, config: TrainConfig, source: Path, epoch: int
) -> None:
    """config.yaml and metrics.jsonl as the trainer writes them, and where it all came from."""
    (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    with (out / "metrics.jsonl").open("w") as f:
        for report in trial.reports:
            if report["epoch"] <= epoch:
                f.write(strict_json(trainer_metrics(report)) + "\n")
    (out / "exported_from.json").write_text(
        strict_json(
            {
                "experiment": str(exp.path),
                "trial_id": trial.trial_id,
                "params": trial.params,
                "epoch": epoch,
                "ending": trial.ending.text,
                "checkpoint": str(source),
            },
            indent=1,
        )
    )


def newest_checkpoint(exp: Experiment, trial: Trial) -> tuple[Path, int]:
    """The checkpoint directory (and epoch) of the newest report whose checkpoint is on disk.

    A report names its checkpoint: `checkpoint_dir_name`, a folder of the trial's own
    (Tune checkpoints), or, in experiments of collatz-ray before 0.3, `checkpoint_path`,
    an absolute path into the experiment's _train/<trial id>/ (Ray Train's), which breaks
    when the experiment was copied or moved, so its folder name is looked up under this
    experiment's _train/ first. Ray keeps only the newest checkpoints, and a trial ASHA
    stopped may have written one more that Tune never saw; neither matters, as only
    reported checkpoints are taken.
    """
    for report in reversed(trial.reports):
        for candidate in _checkpoint_candidates(exp, trial, report):
            if all((candidate / name).is_file() for name in CHECKPOINT_FILES):
                return candidate, report["epoch"]
    raise UsageError(
        f"trial {trial.trial_id}: no reported checkpoint found under "
        f"{trial.path or exp.path / TRAIN_DIR / trial.trial_id}"
    )


def _checkpoint_candidates(exp: Experiment, trial: Trial, report: dict) -> list[Path]:
    named, recorded = report.get("checkpoint_dir_name"), report.get("checkpoint_path")
    if isinstance(named, str) and trial.path is not None and Path(named).name == named:
        return [trial.path / named]
    if isinstance(recorded, str) and recorded:
        return [exp.path / TRAIN_DIR / trial.trial_id / Path(recorded).name, Path(recorded)]
    return []


def _shape_flags(config: TrainConfig) -> str:
    """What `evaluate` needs to rebuild the model around seed-format weights."""
    flags = [f"--lookahead {config.lookahead}"]
    flags.append("--linear" if config.linear else "--layers " + ",".join(map(str, config.layers)))
    flags += ["--k-only"] * config.k_only + ["--k-shifted"] * config.k_shifted
    if config.eval_csv:
        flags.append(f"--eval-csv {config.eval_csv}")
    return " ".join(flags)


def _say_usage(
    say: Callable[[str], None], out: Path, checkpoint: Path, config: TrainConfig, trial: Trial, epoch: int
) -> None:
    say(
        f"exported trial {trial.trial_id} (epoch {epoch}, {trial.ending.text}) to {out}; "
        "it is a run directory:"
    )
    say(f"  re-run:    python -m collatz_ray.train --config {out}/config.yaml --out NEW_DIR")
    say(
        f"  continue:  python -m collatz_ray.train --resume {out}   (to epoch {config.epochs}; "
        "--epochs N for more)"
    )
    say(f"  evaluate:  python -m collatz_ray.evaluate --checkpoint {out}   (scores {checkpoint.name})")
    say(
        f"  seed-format weights: python -m collatz_ray.evaluate --checkpoint {out}/model.pth "
        f"{_shape_flags(config)}"
    )
