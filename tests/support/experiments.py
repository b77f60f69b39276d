"""Experiments written by hand in Ray's layout (collatz_ray/search/settings.py): a search
over search_spaces/smoke.yaml whose trials ended as a test needs, and replications of
chosen configurations with chosen results per seed. No search is run; what the files
hold is what a real search writes (tests/e2e has the real ones)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collatz_ray.search.spaces import load_space

REPO = Path(__file__).resolve().parents[2]
SMOKE_SPACE = REPO / "search_spaces" / "smoke.yaml"
#: The smoke space's budget, as the search saves it.
BUDGET = {"epochs": 60, "eval_interval": 20, "grace_epochs": 20, "reduction_factor": 2, "num_samples": 4}


def report(epoch: int, violations: int, *, pass_rate: float = 90.0, trial_id: str, done: bool) -> dict:
    """One evaluation as the trainer reports it (the summaries' required keys)."""
    return {
        "epoch": epoch,
        "traj_total_violations": violations,
        "traj_total_steps": 429,
        "traj_unseen_violations": violations // 2,
        "traj_unseen_steps": 158,
        "pass_rate": pass_rate,
        "weighted_pass_rate": pass_rate,
        "growth_pass_rate": pass_rate,
        "growth_weighted_pass_rate": pass_rate,
        "margin_5pct": -0.01,
        "loss": 1.0,
        "objective": violations + 0.5,
        "trial_id": trial_id,
        "done": done,
    }


def write_trial(
    experiment: Path,
    trial_id: str,
    *,
    params: dict[str, Any],
    violations: int | None,
    epoch: int = BUDGET["epochs"],
    seed: int = 0,
    pass_rate: float = 90.0,
    error: str | None = None,
    done: bool = True,
) -> Path:
    """A trial folder: params.json, train_config.json (the smoke space's config for
    `params`, trained with `seed` on the CPU) and result.json with reports every
    evaluation up to `epoch` (none when `violations` is None), or error.txt."""
    folder = experiment / f"collatz_trial_{trial_id}"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(params))
    config = load_space(experiment / "space.yaml").trial_config(params).replace(seed=seed, device="cpu")
    (folder / "train_config.json").write_text(json.dumps(config.to_dict()))
    if violations is not None:
        epochs = range(BUDGET["eval_interval"], epoch + 1, BUDGET["eval_interval"])
        lines = [
            report(
                e, violations + epoch - e, pass_rate=pass_rate, trial_id=trial_id, done=done and e == epoch
            )
            for e in epochs
        ]
        (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if error is not None:
        (folder / "error.txt").write_text(error)
    return folder


def search_experiment(path: Path, *, settings: dict[str, Any] | None = None) -> Path:
    """An empty experiment of the smoke space: its settings and its space copy."""
    path.mkdir(parents=True)
    shutil.copy(SMOKE_SPACE, path / "space.yaml")
    saved = {
        "space_path": str(path / "space.yaml"),
        "space_name": "smoke",
        "objective": "log",
        "budget": BUDGET,
        "storage": str(path.parent),
        "experiment": path.name,
        "cpus_per_trial": 1.0,
        "gpus_per_trial": 0.0,
        "seed": 0,
        "max_concurrent": 2,
        "eval_csv": None,
        "start_timeout_s": 120.0,
        **(settings or {}),
    }
    (path / "collatz_search.json").write_text(json.dumps(saved))
    return path


def replication_experiment(
    path: Path,
    results: Sequence[tuple[dict[str, Any], Sequence[int | None]]],
    *,
    seeds: Sequence[int] = (1, 2, 3),
    plan: Any = True,
    source: str | None = "/somewhere/smoke",
) -> Path:
    """A replication of the smoke space: per configuration (params, violations for each
    seed, None for a seed still running). `plan` True saves the plan these make, False
    none, anything else is saved as the plan (a damaged one)."""
    if plan is True:
        plan = {
            "source": source,
            "seeds": list(seeds),
            "configurations": [
                {"params": params, "source_trials": [f"src{i}"]} for i, (params, _) in enumerate(results)
            ],
        }
    budget = {**BUDGET, "grace_epochs": BUDGET["epochs"], "num_samples": len(results) * len(seeds)}
    search_experiment(path, settings={"budget": budget, **({"replicate": plan} if plan is not False else {})})
    for i, (params, violations) in enumerate(results):
        for seed, count in zip(seeds, violations):
            running = count is None
            write_trial(
                path,
                f"c{i}s{seed}",
                params={**params, "seed": seed},
                seed=seed,
                violations=40 if running else count,
                epoch=20 if running else BUDGET["epochs"],
                pass_rate=95.0 - (count or 0) / 10,
                done=not running,
            )
    return path
