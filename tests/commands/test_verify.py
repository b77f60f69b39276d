"""`python -m collatz_ray.verify`: reports, JSON tied to the checkpoint's sha256, scans
that resume from their progress file after an interruption and refuse another
checkpoint or other flags, and bad input as one line with exit status 2."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from support.clitools import run_command
from support.runs import tiny_config

from collatz_ray.trainer import scan as scan_lib
from collatz_ray.trainer.loop import train

THIS_RUN = {"numbers_this_run", "seconds_this_run", "numbers_per_second", "scan_seconds"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, eval_csv) -> dict[str, Path]:
    """Two tiny trained runs (different seeds, so different weights)."""
    root = tmp_path_factory.mktemp("verify")
    out = {}
    for name, seed in (("a", 0), ("b", 1)):
        train(
            tiny_config(eval_csv, seed=seed),
            run_dir=root / name,
            verbose=False,
        )
        out[name] = root / name
    return out


def verify_json(*args) -> dict:
    outcome = run_command("verify", *args, "--json")
    assert outcome.status == 0, outcome.stderr
    return json.loads(outcome.stdout)


def stable(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in THIS_RUN}


def test_a_range_scan_reports_counts_examples_and_density(runs):
    report = verify_json(
        "--checkpoint", runs["a"], "--range", "3..2**12", "--first", "4", "--chunk", "2**9-12"
    )
    assert report["numbers"] == 2047 and report["complete"] and report["chunks"] == 5
    # A run directory is read through its newest checkpoint (as evaluate reads it).
    newest = runs["a"] / "checkpoints" / "epoch_00000002" / "state.pt"
    assert report["checkpoint_sha256"] == hashlib.sha256(newest.read_bytes()).hexdigest()
    assert report["model"] == {"layers": [8], "lookahead": 5, "k_only": False, "k_shifted": False}
    assert sum(b["numbers"] for b in report["buckets"]) == 2047
    assert sum(b["violations"] for b in report["buckets"]) == report["violations"]
    assert len(report["counterexamples"]) == min(4, report["violations"])
    assert report["numbers_per_second"] > 0
    text = run_command("verify", "--checkpoint", runs["a"], "--range", "3..2**12", "--first", "4")
    assert text.status == 0 and f"violations {report['violations']:,}" in text.stdout
    assert "density" in text.stdout and "n/s" in text.stdout


def test_random_samples_per_bit_length(runs):
    report = verify_json(
        "--checkpoint", runs["a"], "--random", "300:50", "--random", "20:2**6", "--seed", "3"
    )
    assert [(b["bits"], b["numbers"]) for b in report["buckets"]] == [(20, 64), (300, 50)]
    assert all(len(bin(int(e["n"]))) - 2 in (20, 300) for e in report["counterexamples"])
    again = verify_json("--checkpoint", runs["a"], "--random", "300:50", "--random", "20:2**6", "--seed", "3")
    assert stable(again) == stable(report)


def test_an_interrupted_scan_continues_from_its_progress_file(runs, tmp_path, monkeypatch):
    args = ("--checkpoint", runs["a"], "--range", "3..3000", "--chunk", "300", "--first", "20")
    whole = verify_json(*args)
    out = tmp_path / "scan.json"
    real = scan_lib.scan_chunk
    calls = []

    def interrupted(*a, **kw):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(kw["index"])
        return real(*a, **kw)

    monkeypatch.setattr(scan_lib, "scan_chunk", interrupted)
    stopped = run_command("verify", *args, "--out", out)
    assert stopped.status == 130 and "Traceback" not in stopped.stderr
    assert stopped.stderr.splitlines() == [
        f"collatz_ray.verify: interrupted by SIGINT; 3 of 5 chunks are kept in {out}.progress; "
        f"continue with: python -m collatz_ray.verify {' '.join(map(str, args))} --out {out}"
    ]
    monkeypatch.setattr(scan_lib, "scan_chunk", real)
    progress = json.loads((tmp_path / "scan.json.progress").read_text())
    assert progress["done"] == [0, 1, 2] and not out.exists()

    resumed = verify_json(*args, "--out", out)
    assert resumed["numbers_this_run"] == whole["numbers"] - 900
    assert stable(resumed) == stable(whole) and json.loads(out.read_text()) == resumed
    finished = verify_json(*args, "--out", out)  # nothing left: the same report
    assert finished["numbers_this_run"] == 0 and stable(finished) == stable(whole)


def test_a_progress_file_refuses_another_checkpoint_or_other_flags(runs, tmp_path):
    out = tmp_path / "scan.json"
    verify_json("--checkpoint", runs["a"], "--range", "3..100", "--out", out)
    run_command("verify", "--checkpoint", runs["b"], "--range", "3..100", "--out", out).one_error_line(
        "scan.json.progress", "another checkpoint"
    )
    run_command("verify", "--checkpoint", runs["a"], "--range", "3..200", "--out", out).one_error_line(
        "scan.json.progress", "other settings (scan)"
    )


BAD = {
    "range-1": (["--range", "1..10"], ["--range 1..10", "start at 3"]),
    "range-empty": (["--range", "10..5"], ["--range 10..5", "no odd n"]),
    "range-syntax": (["--range", "3..2^32"], ["--range 3..2^32", "A..B"]),
    "range-power": (["--range", "3..2**"], ["--range 3..2**", "A..B"]),
    "range-one-end": (["--range", "3"], ["--range 3", "A..B"]),
    "range-huge": (["--range", "3..2**40000"], ["--range 3..2**40000"]),
    "range-too-big": (["--range", "2**14001..2**14001+9"], ["--range", "beyond 2**14000"]),
    "random-too-big": (["--random", "14001:1"], ["--random 14001:1", "BITS <= 14000"]),
    "random-bits": (["--random", "1:5"], ["--random 1:5", "BITS"]),
    "random-count": (["--random", "64:0"], ["--random 64:0", "COUNT"]),
    "random-form": (["--random", "64"], ["--random 64", "BITS:COUNT"]),
    "random-twice": (["--random", "64:5", "--random", "64:6"], ["--random", "once"]),
    "both": (["--range", "3..9", "--random", "64:5"], ["--random", "--range"]),
    "neither": ([], ["--range", "--random"]),
    "seed-with-range": (["--range", "3..9", "--seed", "2"], ["--seed", "--random"]),
    "chunk": (["--range", "3..9", "--chunk", "0"], ["--chunk"]),
    "chunk-huge": (["--range", "3..9", "--chunk", "2**33"], ["--chunk 8589934592", "more than 2**32"]),
    "too-many-chunks": (["--range", "3..2**13000"], ["--chunk 1048576", "2**12998", "larger --chunk"]),
    "shape": (["--range", "3..9", "--lookahead", "7"], ["--checkpoint", "net.0.weight"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_exit_2(runs, case):
    args, fragments = BAD[case]
    outcome = run_command("verify", "--checkpoint", runs["a"], *args)
    assert outcome.one_error_line(*fragments).startswith("collatz_ray.verify: error: ")
    assert outcome.stdout == ""


def test_bad_checkpoints_and_outputs_are_one_line(runs, tmp_path):
    run_command("verify", "--checkpoint", tmp_path / "nothing.pth", "--range", "3..9").one_error_line(
        "--checkpoint", "nothing.pth"
    )
    torch.save({"weights": torch.zeros(3)}, tmp_path / "seed.pth")
    run_command("verify", "--checkpoint", tmp_path / "seed.pth", "--range", "3..9").one_error_line(
        "--checkpoint", "seed.pth"
    )
    run_command("verify", "--checkpoint", runs["a"], "--range", "3..9", "--out", tmp_path).one_error_line(
        "--out", "directory"
    )
    run_command(
        "verify", "--checkpoint", runs["a"], "--range", "3..9", "--out", tmp_path / "absent" / "scan.json"
    ).one_error_line("--out", "no directory")


@pytest.mark.parametrize(
    "text, value",
    [
        ("3", 3),
        ("2**32", 2**32),
        ("2**40+2**20-1", 2**40 + 2**20 - 1),
        (" 2 ** 10 + 1 ", 1025),
        ("2**30000", 2**30000),
    ],
    ids=lambda p: p if isinstance(p, str) else "",
)
def test_range_ends_are_parsed_without_eval(text, value):
    from collatz_ray._cli import integer_expression

    assert integer_expression(text) == value


@pytest.mark.parametrize(
    "text", ["", "2***3", "2**", "2^32", "1e9", "2**3**2", "3 4", "2**30001", "__import__('os')"]
)
def test_anything_else_is_not_an_integer(text):
    from collatz_ray._cli import integer_expression

    with pytest.raises(ValueError):
        integer_expression(text)
