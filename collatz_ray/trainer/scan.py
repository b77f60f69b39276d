"""An exact scan of a model for counterexamples: odd n with V(T n) >= V(n).

The held-out metrics sample a few hundred steps; a Lyapunov candidate must hold at every
odd n. This scans a whole range of odd n (or seeded random samples of given bit lengths)
and counts the n whose step does not decrease V, with a non-finite V counted as a
violation too. Nothing is approximated on the integer side: n and T(n) are exact limbs,
and the rows of n and T(n) come from one k-sequence of length L + 1 (the offset trick of
docs/method.md §2, as the evaluation uses for t1), so T(n) is never materialised.

A scan is cut into chunks that are independent and deterministic (a range chunk is a
run of consecutive odd numbers; a random chunk has its own generator, seeded by (seed,
bits, chunk)). That is what makes a scan resumable chunk by chunk and lets chunks run in
any order, on any machine: the results of chunks merge into one summary whatever the
order (`Summary.add`), keeping the first counterexamples in scan order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from collatz_ray._atomic import write_atomically
from collatz_ray._interrupt import signals_deferred
from collatz_ray.errors import UsageError
from collatz_ray.syracuse import limbs
from collatz_ray.syracuse.arith import syracuse
from collatz_ray.syracuse.features import FeatureSpec, features_of_limbs
from collatz_ray.trainer.evaluation import predict
from collatz_ray.trainer.model import LyapunovMLP

#: Odd numbers per chunk: the unit of resuming and of a Ray task.
DEFAULT_CHUNK = 1 << 20
#: Numbers made, featurised and scored at once inside a chunk, at most: what bounds a
#: scan's memory, whatever its chunk size.
SCAN_BATCH = 1 << 16
#: 32-bit limbs (held as int64) in one batch, at most: wide numbers come in smaller
#: batches, so memory does not grow with bit length either. A batch's numbers cost some
#: 8 bytes a limb several times over while they are made and featurised; 2**22 limbs keep
#: that near 100 MB (2**16 numbers of up to 2048 bits; 9576 of 14000 bits).
SCAN_LIMBS = 1 << 22
#: The largest chunk: the unit of progress, saved when a chunk is done, so a larger one
#: could run for hours (2**32 numbers at a million a second) before anything is kept.
MAX_CHUNK = 1 << 32
#: Chunks a scan may have: its plan and its progress file list them all.
MAX_CHUNKS = 1_000_000
DEFAULT_KEEP = 10
PROGRESS_FORMAT = 1


@dataclass(frozen=True)
class Scan:
    """What to scan: the odd n in [start, stop), or for each (bits, count) in `random`,
    `count` odd numbers of exactly `bits` bits drawn with `seed`."""

    start: int | None = None
    stop: int | None = None
    random: tuple[tuple[int, int], ...] = ()
    seed: int = 0
    chunk: int = DEFAULT_CHUNK

    @property
    def first_odd(self) -> int:
        return self._range()[0] | 1

    @property
    def count(self) -> int:
        if self.random:
            return sum(count for _, count in self.random)
        return max(0, (self._range()[1] - self.first_odd + 1) // 2)

    def _range(self) -> tuple[int, int]:
        """(start, stop) of a scan of a range; a scan of random numbers has none."""
        if self.start is None or self.stop is None:
            raise ValueError("a scan of random numbers has no range")
        return self.start, self.stop

    def chunks(self) -> list[tuple]:
        """Every chunk as a plain tuple (it travels to Ray tasks and into progress files):
        ("range", first odd n, count) or ("random", bits, count, index within the bits)."""
        if not self.random:
            first, total = self.first_odd, self.count
            return [("range", first + 2 * i, min(self.chunk, total - i)) for i in range(0, total, self.chunk)]
        return [
            ("random", bits, min(self.chunk, count - i), i // self.chunk)
            for bits, count in self.random
            for i in range(0, count, self.chunk)
        ]

    def describe(self) -> dict[str, Any]:
        """JSON identity of the scan (big bounds as decimal strings)."""
        if self.random:
            return {"random": [[b, c] for b, c in self.random], "seed": self.seed, "chunk": self.chunk}
        return {"range": [str(self.start), str(self.stop)], "chunk": self.chunk}


def chunk_batches(chunk: tuple, *, seed: int, device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """The limbs of a chunk's odd numbers, in scan order, a batch (batch_size) at a
    time: a chunk is never held whole, so its size costs time, not memory. A random
    chunk's generator is drawn from batch after batch, which gives the numbers one draw
    of the whole chunk gives (numpy's integers() consumes its stream row by row)."""
    if chunk[0] == "range":
        _, first, count = chunk
        batch = batch_size(first + 2 * count)
        for offset in range(0, count, batch):
            yield _odd_run(first + 2 * offset, min(batch, count - offset)).to(device)
        return
    _, bits, count, index = chunk
    rng = np.random.default_rng([seed, bits, index])
    batch = batch_size(2**bits - 1)
    for offset in range(0, count, batch):
        top = np.full(min(batch, count - offset), bits - 1, dtype=np.int64)
        yield limbs.random_odd(rng, top, width=-(-bits // limbs.LIMB_BITS)).to(device)


def batch_size(largest: int) -> int:
    """Numbers a batch holds when none is larger than `largest`: SCAN_BATCH, or fewer
    to stay within SCAN_LIMBS."""
    width = max(1, -(-largest.bit_length() // limbs.LIMB_BITS))
    return max(1, min(SCAN_BATCH, SCAN_LIMBS // width))


def _odd_run(first: int, count: int) -> torch.Tensor:
    """first, first + 2, ..., as limbs: the low limb plus 2i, carries rippled up."""
    width = max(1, -(-(first + 2 * count).bit_length() // limbs.LIMB_BITS))
    base = limbs.from_ints([first], width=width)[0]
    out = base.repeat(count, 1)
    carry = base[0] + 2 * torch.arange(count, dtype=torch.int64)
    for j in range(width):
        total = carry if j == 0 else out[:, j] + carry
        out[:, j] = total & limbs.LIMB_MASK
        carry = total >> limbs.LIMB_BITS
    return out


@dataclass
class Summary:
    """Merged chunk results: counts, counts per bit length, the first `keep`
    counterexamples in scan order, and the seconds spent scanning."""

    keep: int = DEFAULT_KEEP
    numbers: int = 0
    violations: int = 0
    buckets: dict[int, list[int]] = field(default_factory=dict)  # bits -> [numbers, violations]
    examples: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, result: dict[str, Any]) -> None:
        self.numbers += result["numbers"]
        self.violations += result["violations"]
        for bits, (count, bad) in result["buckets"].items():
            bucket = self.buckets.setdefault(int(bits), [0, 0])
            bucket[0] += count
            bucket[1] += bad
        merged = self.examples + result["examples"]
        self.examples = sorted(merged, key=lambda e: (e["chunk"], e["position"]))[: self.keep]
        self.seconds += result["seconds"]

    def to_json(self) -> dict[str, Any]:
        return {
            "numbers": self.numbers,
            "violations": self.violations,
            "buckets": [
                {"bits": b, "numbers": n, "violations": v, "density": v / n}
                for b, (n, v) in sorted(self.buckets.items())
            ],
            "counterexamples": self.examples,
            "scan_seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, keep: int) -> Summary:
        return cls(
            keep=keep,
            numbers=data["numbers"],
            violations=data["violations"],
            buckets={b["bits"]: [b["numbers"], b["violations"]] for b in data["buckets"]},
            examples=list(data["counterexamples"]),
            seconds=data["scan_seconds"],
        )


@torch.no_grad()
def scan_chunk(
    model: LyapunovMLP,
    spec: FeatureSpec,
    chunk: tuple,
    *,
    index: int,
    seed: int,
    keep: int,
    device: torch.device,
) -> dict[str, Any]:
    """Scan one chunk: how many of its odd n have V(T n) >= V(n) (or a non-finite V),
    per bit length, and its first `keep` such n with V(n), V(T n) and the margin."""
    start = time.perf_counter()
    bits_hist = np.zeros(0, dtype=np.int64)
    bad_hist = np.zeros(0, dtype=np.int64)
    examples: list[dict[str, Any]] = []
    batches = chunk_batches(chunk, seed=seed, device=device)
    for offset, n, v_n, v_t, bad in _scored_batches(model, spec, batches):
        bits = limbs.bit_lengths(n).cpu().numpy()
        bits_hist = _add_counts(bits_hist, np.bincount(bits))
        bad_hist = _add_counts(bad_hist, np.bincount(bits[bad]))
        for i in np.nonzero(bad)[0][: keep - len(examples)]:
            value = limbs.to_ints(n[i : i + 1])[0]
            margin = v_n[i] - v_t[i]
            examples.append(
                {
                    "chunk": index,
                    "position": offset + int(i),
                    "n": str(value),
                    "t": str(syracuse(value)),
                    "v_n": _finite(v_n[i]),
                    "v_t": _finite(v_t[i]),
                    "margin": _finite(margin),
                }
            )
    bad_hist = np.pad(bad_hist, (0, max(0, len(bits_hist) - len(bad_hist))))
    return {
        "index": index,
        "numbers": int(bits_hist.sum()),
        "violations": int(bad_hist.sum()),
        "buckets": {int(b): [int(bits_hist[b]), int(bad_hist[b])] for b in np.nonzero(bits_hist)[0]},
        "examples": examples,
        "seconds": time.perf_counter() - start,
    }


def _scored_batches(
    model: LyapunovMLP, spec: FeatureSpec, batches: Iterable[torch.Tensor]
) -> Iterator[tuple[int, torch.Tensor, np.ndarray, np.ndarray, np.ndarray]]:
    """(offset, n, V(n), V(T n), violation mask) per batch of numbers."""
    offset = 0
    for n in batches:
        # Every n is odd and >= 3, so offset 1 of n's k-sequence gives T(n)'s row.
        rows = features_of_limbs(n, spec, offsets=(0, 1)).rows
        v_n, v_t = predict(model, rows[0]), predict(model, rows[1])
        with np.errstate(invalid="ignore"):
            bad = ~(v_n - v_t > 0) | ~np.isfinite(v_n) | ~np.isfinite(v_t)
        yield offset, n, v_n, v_t, bad
        offset += n.shape[0]


def _add_counts(total: np.ndarray, more: np.ndarray) -> np.ndarray:
    size = max(len(total), len(more))
    return np.pad(total, (0, size - len(total))) + np.pad(more, (0, size - len(more)))


def _finite(x: float) -> float | None:
    """JSON has no NaN or infinity: a non-finite value is null."""
    return float(x) if np.isfinite(x) else None


def scan_locally(
    model: LyapunovMLP,
    spec: FeatureSpec,
    scan: Scan,
    chunks: Iterable[tuple[int, tuple]],
    *,
    keep: int,
    device: torch.device,
) -> Iterator[dict[str, Any]]:
    """Each (index, chunk)'s result, in order, on this machine."""
    model = model.to(device)
    for index, chunk in chunks:
        yield scan_chunk(model, spec, chunk, index=index, seed=scan.seed, keep=keep, device=device)


class Progress:
    """A scan's state in a JSON file beside its report: which chunks are done and their
    merged summary, tied to the identity of the scan (checkpoint sha256, model, scan,
    number of counterexamples kept). Rewritten atomically after every chunk, so an
    interrupted scan continues where it stopped; a scan of anything else is refused."""

    def __init__(self, path: Path | None, identity: dict[str, Any], *, keep: int) -> None:
        """`path` None: kept in memory only (a scan without --out does not resume)."""
        self.path, self.identity = path, identity
        self.done: set[int] = set()
        self.summary = Summary(keep=keep)
        if path is not None and path.exists():
            self._load(path, keep)

    def _load(self, path: Path, keep: int) -> None:
        try:
            state = json.loads(path.read_text())
            saved, done, summary = state["identity"], state["done"], state["summary"]
            if state.get("format") != PROGRESS_FORMAT:
                raise KeyError("format")
        except (ValueError, KeyError, TypeError):
            raise UsageError(
                f"{path}: not a progress file of this scan's format; delete it or choose another --out"
            ) from None
        if saved.get("checkpoint_sha256") != self.identity["checkpoint_sha256"]:
            raise UsageError(
                f"{path}: the progress of a scan of another checkpoint (sha256 "
                f"{str(saved.get('checkpoint_sha256'))[:12]}..., this one "
                f"{self.identity['checkpoint_sha256'][:12]}...); delete it or choose another --out"
            )
        differ = sorted(
            k for k in self.identity.keys() | saved.keys() if saved.get(k) != self.identity.get(k)
        )
        if differ:
            raise UsageError(
                f"{path}: the progress of a scan with other settings "
                f"({', '.join(differ)}); rerun with the same flags, or delete it"
            )
        self.done = set(done)
        self.summary = Summary.from_json(summary, keep=keep)

    def record(self, result: dict[str, Any]) -> None:
        # Memory and file change together: an interruption's line counts what is kept.
        with signals_deferred():
            self.done.add(result["index"])
            self.summary.add(result)
            self.save()

    def save(self) -> None:
        if self.path is None:
            return
        state = {
            "format": PROGRESS_FORMAT,
            "identity": self.identity,
            "done": sorted(self.done),
            "summary": self.summary.to_json(),
        }
        # Durable: a progress file a power cut left empty would be refused, and with it
        # every chunk done (an fsync costs milliseconds; a chunk, far more).
        write_atomically(self.path, json.dumps(state), durable=True)
