"""The benchmark runs end to end in quick mode and reports honest ratios.

Speed targets are reported by the benchmark, not asserted here: CI machines are shared
and noisy. What is asserted is that the naive and fast paths were checked equal before
timing, that every ratio is a positive number, and that vectorised features beat the
per-integer loop at all (that is structural, not a tuning result).
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def quick_report() -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "collatz_ray.bench", "--quick", "--json", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=900,
    )  # generous: a loaded CI machine took over 240 s
    assert proc.returncode == 0, f"bench failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one JSON object, got:\n{proc.stdout[-2000:]}"
    return json.loads(lines[0])


def test_equality_checks_passed(quick_report: dict) -> None:
    assert quick_report["checks_passed"] is True
    assert set(quick_report["checks"]) >= {
        "features_uniform128",
        "features_training",
        "training_batch",
        "evaluation_metrics",
        "verify_scan",
    }
    assert all(c["passed"] for c in quick_report["checks"].values())


def test_four_ratios_are_positive_numbers(quick_report: dict) -> None:
    ratios = quick_report["ratios"]
    assert set(ratios) == {"features", "training", "evaluation", "verify"}
    for name, value in ratios.items():
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (name, value)
    share = quick_report["data_share"]
    assert 0 < share < 1


def test_vectorised_features_beat_the_per_integer_loop(quick_report: dict) -> None:
    assert quick_report["ratios"]["features"] > 1


def test_machine_and_table_are_reported(quick_report: dict) -> None:
    machine = quick_report["machine"]
    assert machine["cpu_count"] >= 1 and machine["torch"] and machine["device"] == "cpu"
    columns = {"benchmark", "naive", "fast", "ratio", "target", "met"}
    assert quick_report["table"] and all(columns <= set(row) for row in quick_report["table"])


def test_failed_equality_check_exits_nonzero(monkeypatch, capsys) -> None:
    """A disagreement between naive and fast stops the benchmark before any ratio."""
    from collatz_ray import bench
    from collatz_ray.benchmarks import speed

    monkeypatch.setattr(
        speed, "naive_rows", lambda values, lookahead, offset=0: [[0.0] * (6 + lookahead) for _ in values]
    )
    monkeypatch.setattr(
        speed,
        "QUICK",
        dataclasses.replace(speed.QUICK, features_fast=64, features_naive=16, repeats=1, min_seconds=0.0),
    )
    assert bench.main(["--quick", "--json", "--only", "features", "--device", "cpu"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["checks_passed"] is False and "features_uniform128" in out["error"]


def test_the_verify_benchmark_alone_checks_then_beats_the_per_integer_scan(monkeypatch, capsys) -> None:
    from collatz_ray import bench
    from collatz_ray.benchmarks import speed

    monkeypatch.setattr(
        speed,
        "QUICK",
        dataclasses.replace(speed.QUICK, verify_fast=8192, verify_naive=300, repeats=1, min_seconds=0.0),
    )
    assert bench.main(["--quick", "--json", "--only", "verify", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["checks"]["verify_scan"]["passed"] is True and list(out["checks"]) == ["verify_scan"]
    figures = out["figures"]["verify"]
    assert figures["ratio"] > 1 and figures["fast_numbers"] == 8192 and figures["naive_numbers"] == 300
    assert figures["projected_hours_all_odd_below_2_32"] > 0
