"""Reading a run directory's records as the tests compare them."""

from __future__ import annotations

import json
from pathlib import Path

#: What differs between two runs of the same config: how long they took.
TIMING_KEYS = {"seconds", "epochs_per_second", "samples_per_second"}


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]
