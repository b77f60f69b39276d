"""Tiny training runs, and a run directory's records as the tests compare them."""

from __future__ import annotations

import json
from pathlib import Path

#: What differs between two runs of the same config: how long they took.
TIMING_KEYS = {"seconds", "epochs_per_second", "samples_per_second"}


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def tiny_config(eval_csv: Path, **changes):
    """A run that trains in about a second on a CPU: two epochs of a width-8 model at
    lookahead 5, which leave V failing at many n (what the scan and bank tests need)."""
    from collatz_ray.trainer.config import TrainConfig

    settings = {
        "layers": (8,),
        "lookahead": 5,
        "epochs": 2,
        "eval_interval": 2,
        "batch_size": 16,
        "device": "cpu",
        "eval_csv": str(eval_csv),
    }
    return TrainConfig(**{**settings, **changes})
