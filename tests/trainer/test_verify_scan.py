"""The counterexample scan (collatz_ray.trainer.scan) against the plain definition:
Python ints, reference rows of n and T(n), the model; chunks that merge in any order;
random chunks that are reproducible; progress files that resume or refuse."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from collatz_ray.errors import UsageError
from collatz_ray.syracuse import limbs
from collatz_ray.syracuse.arith import syracuse
from collatz_ray.syracuse.features import FeatureSpec, reference_row
from collatz_ray.trainer import scan as scan_lib
from collatz_ray.trainer.model import LyapunovMLP
from collatz_ray.trainer.scan import Progress, Scan, Summary, chunk_batches, scan_chunk, scan_locally

CPU = torch.device("cpu")
SPEC = FeatureSpec(6)


def model(seed: int = 0) -> LyapunovMLP:
    torch.manual_seed(seed)
    return LyapunovMLP(SPEC.dim, (8,))


def reference(m: LyapunovMLP, values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(margins, violation mask) the plain way."""
    with torch.no_grad():
        v_n = m(torch.tensor([reference_row(n, 6) for n in values])).double().numpy()
        v_t = m(torch.tensor([reference_row(syracuse(n), 6) for n in values])).double().numpy()
    margin = v_n - v_t
    return margin, ~(margin > 0) | ~np.isfinite(v_n) | ~np.isfinite(v_t)


def test_a_range_scan_finds_exactly_the_reference_violations():
    m = model()
    scan = Scan(start=2, stop=4001, chunk=700)
    values = list(range(3, 4001, 2))
    assert scan.count == len(values) == 1999
    margin, bad = reference(m, values)
    summary = Summary(keep=5)
    for result in scan_locally(m, SPEC, scan, enumerate(scan.chunks()), keep=5, device=CPU):
        summary.add(result)
    assert summary.numbers == 1999 and summary.violations == int(bad.sum()) > 0
    first = [n for n, b in zip(values, bad) if b][:5]
    assert [int(e["n"]) for e in summary.examples] == first
    assert [int(e["t"]) for e in summary.examples] == [syracuse(n) for n in first]
    for e in summary.examples:
        assert e["margin"] == pytest.approx(float(margin[values.index(int(e["n"]))]), abs=1e-6)
    per_bits = {
        b: [
            sum(n.bit_length() == b for n in values),
            sum(bool(x) for n, x in zip(values, bad) if n.bit_length() == b),
        ]
        for b in range(2, 13)
    }
    assert summary.buckets == per_bits


def numbers_of(chunk: tuple, *, seed: int) -> list[int]:
    return [n for batch in chunk_batches(chunk, seed=seed) for n in limbs.to_ints(batch)]


def test_numbers_beyond_64_bits_are_exact():
    start = 2**100 - 5  # the run crosses 2^100 inside the chunk
    values = list(range(start, start + 2 * 300, 2))
    assert numbers_of(("range", start, 300), seed=0) == values
    m = model(1)
    result = scan_chunk(m, SPEC, ("range", start, 300), index=0, seed=0, keep=300, device=CPU)
    _, bad = reference(m, values)
    assert [int(e["n"]) for e in result["examples"]] == [n for n, b in zip(values, bad) if b]
    assert result["buckets"] == {100: [3, int(bad[:3].sum())], 101: [297, int(bad[3:].sum())]}


def test_a_non_finite_v_is_a_violation():
    m = model()
    with torch.no_grad():
        m.net[0].bias.fill_(float("nan"))
    result = scan_chunk(m, SPEC, ("range", 3, 10), index=0, seed=0, keep=3, device=CPU)
    assert result["violations"] == 10
    assert result["examples"][0] == {
        "chunk": 0,
        "position": 0,
        "n": "3",
        "t": "5",
        "v_n": None,
        "v_t": None,
        "margin": None,
    }


def test_chunks_merge_to_the_same_summary_in_any_order():
    m = model(2)
    scan = Scan(start=3, stop=3001, chunk=256)
    results = list(scan_locally(m, SPEC, scan, enumerate(scan.chunks()), keep=7, device=CPU))
    forward, backward = Summary(keep=7), Summary(keep=7)
    for r in results:
        forward.add(r)
    for r in reversed(results):
        backward.add(r)
    a, b = forward.to_json(), backward.to_json()
    assert a.pop("scan_seconds") == pytest.approx(b.pop("scan_seconds"))
    assert a == b and len(a["counterexamples"]) == 7


def test_random_chunks_have_exactly_their_bits_and_repeat_with_the_seed():
    scan = Scan(random=((2, 5), (70, 1000)), seed=4, chunk=400)
    chunks = scan.chunks()
    assert chunks == [
        ("random", 2, 5, 0),
        ("random", 70, 400, 0),
        ("random", 70, 400, 1),
        ("random", 70, 200, 2),
    ]
    values = [numbers_of(c, seed=4) for c in chunks]
    assert values[0] == [3] * 5
    big = [v for part in values[1:] for v in part]
    assert all(v.bit_length() == 70 and v % 2 == 1 for v in big) and len(set(big)) == 1000
    assert numbers_of(chunks[2], seed=4) == values[2]
    assert numbers_of(chunks[2], seed=5) != values[2]


def test_a_chunk_comes_in_batches_bounded_in_limbs_with_the_numbers_of_one_draw(monkeypatch):
    """Batches keep memory bounded whatever the chunk and bit length, and change no
    number: a random chunk is the one draw of all its numbers that scans made before."""
    monkeypatch.setattr(scan_lib, "SCAN_LIMBS", 3 * 40)  # 40 numbers of 70 bits (3 limbs)
    batches = list(chunk_batches(("random", 70, 1001, 2), seed=4))
    assert [b.shape[0] for b in batches] == [40] * 25 + [1]
    rng = np.random.default_rng([4, 70, 2])
    whole = limbs.random_odd(rng, np.full(1001, 69, dtype=np.int64), width=3)
    assert torch.equal(torch.cat(batches), whole)
    assert numbers_of(("range", 2**64 - 11, 333), seed=0) == list(range(2**64 - 11, 2**64 - 11 + 666, 2))
    monkeypatch.undo()
    for bits in (2, 64, 2048, 14000):
        width = -(-bits // limbs.LIMB_BITS)
        assert scan_lib.batch_size(2**bits - 1) * width <= max(width, scan_lib.SCAN_LIMBS)


IDENTITY = {
    "checkpoint_sha256": "ab" * 32,
    "model": {"layers": [8]},
    "scan": {"range": ["3", "99"]},
    "first": 10,
}


def test_progress_survives_a_restart_and_refuses_another_scan(tmp_path):
    path = tmp_path / "scan.json.progress"
    progress = Progress(path, IDENTITY, keep=10)
    result = scan_chunk(model(), SPEC, ("range", 3, 20), index=0, seed=0, keep=10, device=CPU)
    progress.record(result)
    assert not list(tmp_path.glob(".*partial"))  # written beside, then renamed
    again = Progress(path, IDENTITY, keep=10)
    assert again.done == {0} and again.summary.to_json() == progress.summary.to_json()

    other = {**IDENTITY, "checkpoint_sha256": "cd" * 32}
    with pytest.raises(UsageError, match=r"another checkpoint \(sha256 abababababab"):
        Progress(path, other, keep=10)
    with pytest.raises(UsageError, match=r"other settings \(first, scan\)"):
        Progress(path, {**IDENTITY, "scan": {"range": ["3", "101"]}, "first": 3}, keep=3)
    path.write_text("{not json")
    with pytest.raises(UsageError, match="not a progress file"):
        Progress(path, IDENTITY, keep=10)


def test_progress_without_a_file_keeps_nothing_on_disk(tmp_path):
    progress = Progress(None, IDENTITY, keep=10)
    progress.record(scan_chunk(model(), SPEC, ("range", 3, 4), index=0, seed=0, keep=10, device=CPU))
    assert progress.done == {0} and list(tmp_path.iterdir()) == []


def test_scan_chunks_cover_the_range_once():
    rng = random.Random(0)
    for _ in range(20):
        start = rng.randrange(2, 10**6)
        stop = start + rng.randrange(2, 5000)
        scan = Scan(start=start, stop=stop, chunk=rng.randrange(1, 900))
        covered = [first + 2 * i for _, first, count in scan.chunks() for i in range(count)]
        assert covered == list(range(start | 1, stop, 2))
    assert json.loads(json.dumps(Scan(start=3, stop=2**200).describe())) == {
        "range": ["3", str(2**200)],
        "chunk": 1 << 20,
    }
