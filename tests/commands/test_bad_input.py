"""Bad input to every command is one line on stderr and exit status 2, at once: hostile
YAML, files that are no text, integers past Python's 4300-digit limit, out-of-range seeds
and sizes. Run in this process (tests/clitools.py); no case gets as far as training, a
search or Ray."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from support.clitools import run_command
from support.hostile import billion_laughs

from collatz_ray.errors import SHOWN_CHARS
from collatz_ray.syracuse.arith import MAX_BITS
from collatz_ray.syracuse.features import FeatureSpec
from collatz_ray.trainer.model import LyapunovMLP

HUGE = "7" * 5000  # past Python's 4300-digit limit for int()

SPACE = """budget: {epochs: 40, eval_interval: 20, grace_epochs: 20, reduction_factor: 2, num_samples: NUM}
parameters:
  lr: {values: [0.001, 0.01]}
"""

#: case -> (tool, arguments, fragments of the one stderr line); {root} holds the files below.
CASES: dict[str, tuple[str, list[str], list[str]]] = {
    "train-yaml-bomb": ("train", ["--config", "{root}/bomb.yaml"], ["bomb.yaml", "aliases expand"]),
    "train-yaml-latin1": ("train", ["--config", "{root}/latin1.yaml"], ["latin1.yaml", "not UTF-8"]),
    "train-yaml-directory": ("train", ["--config", "{root}"], ["is a directory"]),
    "train-yaml-huge-int": (
        "train",
        ["--config", "{root}/huge-int.yaml"],
        ["huge-int.yaml", "integer too long"],
    ),
    "train-test-seeds-huge": ("train", ["--test-seeds", f"27,{HUGE}"], ["test_seeds", "a list of integers"]),
    "train-seed-negative": ("train", ["--seed", "-1"], ["seed", "from 0 to"]),
    "train-seed-huge": ("train", ["--seed", HUGE], ["seed", "an integer"]),
    "train-max-bits": ("train", ["--max-bits", str(MAX_BITS + 1)], ["max_bits", str(MAX_BITS)]),
    "train-epochs-1e400": ("train", ["--epochs", "1e400"], ["epochs"]),
    "train-model-too-large": (
        "train",
        ["--lookahead", "2147483647", "--eval-csv", "{csv}", "--out", "{root}/big"],
        ["parameters", "at most"],
    ),
    "evaluate-model-too-large": (
        "evaluate",
        ["--checkpoint", "{root}/model.pth", "--layers", "1073741824,8"],
        ["parameters", "at most"],
    ),
    "train-layer-newline": ("train", ["--target-type", "a\nb\x0cc\u2028d"], ["target_type"]),
    "evaluate-test-seeds-huge": (
        "evaluate",
        ["--checkpoint", "{root}/model.pth", "--linear", "--test-seeds", HUGE],
        ["test_seeds"],
    ),
    "evalset-samples-huge": (
        "evalset",
        ["--samples", "10" + "0" * 30, "--out", "{root}/x.csv"],
        ["samples must be from 1 to"],
    ),
    "evalset-samples-digits": ("evalset", ["--samples", HUGE, "--out", "{root}/x.csv"], ["--samples"]),
    "evalset-max-bits-digits": ("evalset", ["--max-bits", HUGE, "--out", "{root}/x.csv"], ["--max-bits"]),
    "evalset-max-bits": (
        "evalset",
        ["--max-bits", str(MAX_BITS + 1), "--samples", "3", "--out", "{root}/x.csv"],
        ["max_bits must be from 2 to"],
    ),
    "evalset-seed-negative": ("evalset", ["--seed", "-1", "--out", "{root}/x.csv"], ["--seed", "from 0 to"]),
    "evalset-check-latin1": ("evalset", ["--check", "{root}/latin1.yaml"], ["not UTF-8"]),
    "tune-space-bomb": (
        "tune",
        ["--space", "{root}/bomb.yaml", "--storage", "{root}/store"],
        ["bomb.yaml", "aliases expand"],
    ),
    "tune-space-num-samples-digits": (
        "tune",
        ["--space", "{root}/digits.yaml", "--storage", "{root}/store"],
        ["digits.yaml", "integer too long"],
    ),
    "tune-space-num-samples-huge": (
        "tune",
        ["--space", "{root}/big.yaml", "--storage", "{root}/store"],
        ["big.yaml", "budget.num_samples", "at most"],
    ),
    "tune-space-seed-negative": (
        "tune",
        ["--space", "{root}/seed.yaml", "--storage", "{root}/store"],
        ["seed.yaml", "fixed", "seed"],
    ),
    "tune-num-samples-digits": (
        "tune",
        ["--space", "smoke", "--num-samples", HUGE, "--storage", "{root}/store"],
        ["--num-samples"],
    ),
    "tune-seed-digits": (
        "tune",
        ["--space", "smoke", "--seed", HUGE, "--storage", "{root}/store"],
        ["--seed"],
    ),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_input")
    (root / "bomb.yaml").write_text(billion_laughs())
    (root / "latin1.yaml").write_bytes("lr: 0.1  # d\xe9j\xe0\n".encode("latin-1"))
    (root / "huge-int.yaml").write_text(f"seed: {HUGE}\n")
    (root / "digits.yaml").write_text(SPACE.replace("NUM", HUGE))
    (root / "big.yaml").write_text(SPACE.replace("NUM", "9" * 100))
    (root / "seed.yaml").write_text(SPACE.replace("NUM", "2") + "fixed: {seed: -1}\n")
    torch.save(LyapunovMLP(FeatureSpec(10).dim, ()).state_dict(), root / "model.pth")
    return root


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_short_line(root, eval_csv, case):
    tool, args, fragments = CASES[case]
    outcome = run_command(tool, *[a.format(root=root, csv=eval_csv) for a in args])
    line = outcome.one_error_line(*fragments)
    assert line.startswith(f"collatz_ray.{tool}: error: ")
    assert "7" * (SHOWN_CHARS + 1) not in line and len(line) < 1200
    assert outcome.stdout == ""
