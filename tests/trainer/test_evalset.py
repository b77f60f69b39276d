"""The evaluation CSV: byte-exact generation, atomic writes, one-line load errors."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collatz_ray import evalset as evalset_cli
from collatz_ray.errors import UsageError
from collatz_ray.syracuse import arith
from collatz_ray.trainer import evalset_csv as evalset
from collatz_ray.trainer.evalset_csv import (
    CANONICAL_SHA256,
    default_evalset_path,
    ensure_default_evalset,
    file_sha256,
    load_evalset,
    plain_orbit_stats,
    sample_values,
    write_evalset,
)

SMALL = {"samples": 300, "seed": 7, "max_bits": 40}


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("evalset") / "small.csv"
    write_evalset(path, **SMALL)
    return path


# -- the canonical file ---------------------------------------------------------------------


@pytest.mark.slow  # about 3 s: the only test that makes all 50,000 rows; it runs in CI too
def test_canonical_file_is_made_once_in_the_cache_with_the_pinned_sha256(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLATZ_RAY_CACHE", str(tmp_path / "cache"))
    start = time.perf_counter()
    path = ensure_default_evalset()
    print(f"canonical evaluation CSV generated in {time.perf_counter() - start:.2f} s")
    assert path == default_evalset_path()
    assert path.parent == tmp_path / "cache"
    assert file_sha256(path) == CANONICAL_SHA256

    mtime = path.stat().st_mtime_ns
    assert ensure_default_evalset() == path
    assert path.stat().st_mtime_ns == mtime, "an intact cached file must not be regenerated"

    start = time.perf_counter()
    data = load_evalset(path)
    assert time.perf_counter() - start < 1.0
    assert len(data) == 50_000
    assert data.is_growth.dtype == bool and data.w_expansion.dtype.name == "float64"
    assert max(data.n).bit_length() == 128


# -- generation -----------------------------------------------------------------------------


def test_sample_values_are_the_module_level_random_stream():
    random.seed(SMALL["seed"])
    expected, seen = [], set()
    while len(expected) < SMALL["samples"]:
        b = random.randint(2, SMALL["max_bits"])
        v = random.randint(2 ** (b - 1), 2**b - 1)
        if v % 2 == 0:
            v += 1
        if v not in seen:
            seen.add(v)
            expected.append(v)
    assert sample_values(**SMALL) == expected


def test_sample_values_are_distinct_odd_and_leave_global_random_alone():
    random.seed(123)
    before = random.getstate()
    values = sample_values(samples=2000, seed=1, max_bits=12)
    assert random.getstate() == before
    assert len(set(values)) == len(values) == 2000
    assert all(v & 1 and 2 <= v.bit_length() <= 12 for v in values)


def test_asking_for_more_numbers_than_exist_is_a_usage_error():
    assert sorted(sample_values(samples=3, seed=0, max_bits=3)) == [3, 5, 7]
    with pytest.raises(UsageError, match="samples must be <= 3"):
        sample_values(samples=4, seed=0, max_bits=3)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(min_value=1, max_value=2**200), max_steps=st.integers(min_value=0, max_value=3000))
def test_fast_plain_orbit_stats_matches_the_reference(n, max_steps):
    assert plain_orbit_stats(n, max_steps) == arith.plain_orbit_stats(n, max_steps)


def test_file_layout_columns_and_values(small_csv):
    raw = small_csv.read_bytes()
    lines = raw.split(b"\r\n")
    assert lines[0] == b"n,t1,is_growth,sigma_n,max_n,w_expansion"
    assert lines[-1] == b"" and b"\n" not in raw.replace(b"\r\n", b"")
    rows = [line.decode().split(",") for line in lines[1:-1]]
    assert len(rows) == SMALL["samples"]
    assert [int(r[0]) for r in rows] == sample_values(**SMALL)
    for n_s, t1_s, g_s, sigma_s, max_s, w_s in rows:
        n, t1 = int(n_s), int(t1_s)
        assert t1 == arith.syracuse(n)
        assert int(g_s) == int(t1 > n)
        assert (int(sigma_s), int(max_s)) == arith.plain_orbit_stats(n)
        assert w_s == f"{math.log10(max(1, int(max_s) / n)) + 1:.4f}"
        assert len(w_s.split(".")[1]) == 4


def test_generation_is_deterministic(tmp_path, small_csv):
    again = tmp_path / "again.csv"
    write_evalset(again, **SMALL)
    assert again.read_bytes() == small_csv.read_bytes()


def test_load_returns_exact_ints_and_arrays(small_csv):
    data = load_evalset(small_csv)
    assert data.n == sample_values(**SMALL)
    assert data.t1 == [arith.syracuse(n) for n in data.n]
    assert data.is_growth.tolist() == [t > n for n, t in zip(data.n, data.t1)]
    assert data.w_expansion.min() >= 1.0
    assert not data.w_expansion.flags.writeable  # shared through the cache


# -- atomic writes --------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, failure):
    target = tmp_path / "eval.csv"
    target.write_text("old content\n")

    def rows_then_fail(**kwargs):
        yield from [(3, 5, 1, 7, 16, "1.7270")] * 100
        raise failure("interrupted")

    monkeypatch.setattr(evalset, "evalset_rows", rows_then_fail)
    with pytest.raises(failure):
        write_evalset(target, samples=10, seed=0, max_bits=10)
    assert target.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.csv"]


def test_wrong_sha256_never_reaches_the_target(tmp_path):
    target = tmp_path / "eval.csv"
    with pytest.raises(RuntimeError, match="differs from the expected"):
        write_evalset(target, samples=5, seed=0, max_bits=10, expected_sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


# -- cache ----------------------------------------------------------------------------------


def test_default_path_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLATZ_RAY_CACHE", str(tmp_path))
    assert default_evalset_path() == tmp_path / "evalset_n50000_seed42_bits128.csv"
    monkeypatch.delenv("COLLATZ_RAY_CACHE")
    assert default_evalset_path(samples=10, seed=1, max_bits=20) == (
        Path.home() / ".cache" / "collatz_ray" / "evalset_n10_seed1_bits20.csv"
    )


def test_repeated_loads_are_cached_until_the_file_changes(tmp_path):
    path = tmp_path / "eval.csv"
    write_evalset(path, samples=20, seed=1, max_bits=30)
    first = load_evalset(path)
    assert load_evalset(str(path)) is first
    write_evalset(path, samples=25, seed=1, max_bits=30)
    second = load_evalset(path)
    assert second is not first and len(second) == 25


# -- malformed files ------------------------------------------------------------------------

# The first rows a generator would write for n = 3, 7, 9 (the loader ignores sigma_n and max_n).
VALID = "n,t1,is_growth,sigma_n,max_n,w_expansion\r\n3,5,1,7,16,1.7270\r\n7,11,1,16,52,1.8709\r\n9,7,0,19,52,1.7618\r\n"

# (file text, words the single error line must contain)
MALFORMED = {
    "empty": ("", ["empty file"]),
    "header only": ("n,t1,is_growth,sigma_n,max_n,w_expansion\r\n", ["no data rows"]),
    "missing columns": ("n,t1,sigma_n\n3,5,7\n", ["line 1", "missing column(s) is_growth,w_expansion"]),
    "short row": (VALID + "11,17\r\n", ["line 5", "expected 6 fields"]),
    "non-integer n": (VALID.replace("7,11,1", "7.0,11,1"), ["line 3", "column 1 (n)", "an integer", "'7.0'"]),
    "non-integer t1": (VALID.replace("3,5,1", "3,five,1"), ["line 2", "column 2 (t1)", "an integer"]),
    "n below 1": (VALID + "0,1,0,0,0,1.0000\r\n", ["line 5", "column 1 (n)", "n >= 1"]),
    "t1 is not T(n)": (VALID.replace("9,7,0", "9,5,0"), ["line 4", "column 2 (t1)", "T(n) = 7", "'5'"]),
    "is_growth wrong": (VALID.replace("9,7,0", "9,7,1"), ["line 4", "column 3 (is_growth)", "expected 0"]),
    "non-numeric w": (VALID.replace("1.8709", "big"), ["line 3", "column 6 (w_expansion)", "a number"]),
    "nan w": (VALID.replace("1.8709", "nan"), ["line 3", "column 6 (w_expansion)", "finite"]),
    "not utf-8": (None, ["not UTF-8"]),
}


def _write_case(tmp_path: Path, name: str) -> Path:
    text, _ = MALFORMED[name]
    path = tmp_path / "bad.csv"
    if text is None:
        path.write_bytes(b"n,t1,is_growth,w_expansion\r\n3,5,1,\xff\r\n")
    else:
        path.write_bytes(text.encode())
    return path


def test_the_malformed_cases_start_from_a_valid_file(tmp_path):
    for line in VALID.split("\r\n")[1:-1]:
        n = int(line.split(",")[0])
        sigma, peak = arith.plain_orbit_stats(n)
        t1 = arith.syracuse(n)
        assert line == f"{n},{t1},{int(t1 > n)},{sigma},{peak},{math.log10(peak / n) + 1:.4f}"
    path = tmp_path / "ok.csv"
    path.write_text(VALID, newline="")
    assert load_evalset(path).n == [3, 7, 9]


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_load_errors_are_one_line_naming_file_line_and_expectation(tmp_path, case):
    path = _write_case(tmp_path, case)
    with pytest.raises(UsageError) as info:
        load_evalset(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    for words in MALFORMED[case][1]:
        assert words in message


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_evalset(tmp_path / "nope.csv")


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_cli_check_exits_2_with_one_line(tmp_path, capsys, case):
    path = _write_case(tmp_path, case)
    with pytest.raises(SystemExit) as info:
        evalset_cli.main(["--check", str(path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(evalset_cli.__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "collatz_ray.evalset", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--check", "bad.csv"],
        ["--check", "missing.csv"],
        ["--samples", "many", "--out", "x.csv"],
        ["--samples", "0", "--out", "x.csv"],
        ["--check", "bad.csv", "--seed", "3"],
        ["--samples", "5", "--out", "."],
    ],
)
def test_cli_usage_errors_in_a_real_process(tmp_path, args):
    (tmp_path / "bad.csv").write_text(VALID.replace("9,7,0", "9,5,0"))
    result = _run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "error:" in result.stderr
    assert not (tmp_path / "x.csv").exists()


def test_cli_generates_then_checks_a_file(tmp_path):
    result = _run_cli(
        "--samples", "50", "--seed", "3", "--max-bits", "64", "--out", "sub/e.csv", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "sub" / "e.csv"
    assert load_evalset(out).n == sample_values(samples=50, seed=3, max_bits=64)
    check = _run_cli("--check", str(out), cwd=tmp_path)
    assert check.returncode == 0 and "50 rows OK" in check.stdout
