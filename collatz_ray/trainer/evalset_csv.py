"""The evaluation CSV (docs/method.md): generate it byte for byte, load it checked.

The population metrics (pass %, growth-weighted pass %, margins) are only comparable with
the published log if every run scores the same 50,000 numbers, so the canonical file is
pinned by its sha256 and regenerated from the method's recipe rather than shipped. The
loader is the one door through which the trainer and the evaluator read any such CSV:
it checks every row (t1 really is T(n), is_growth agrees with it) so a hand-edited or
truncated file fails loudly with one line instead of skewing a search.

`python -m collatz_ray.evalset` writes or checks such files from the command line.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from collatz_ray._atomic import atomic_file
from collatz_ray.errors import UsageError, shown
from collatz_ray.syracuse.arith import MAX_BITS, syracuse

if TYPE_CHECKING:
    import _csv

CANONICAL_SAMPLES = 50_000
CANONICAL_SEED = 42
CANONICAL_MAX_BITS = 128
CANONICAL_SHA256 = "a1cccffac2c5f83ff5cbd764a3188fc4b2cf21f63971facf9f09c31c4790dc39"

#: Column order of the generated file.
COLUMNS: tuple[str, ...] = ("n", "t1", "is_growth", "sigma_n", "max_n", "w_expansion")
#: The columns the metrics use; sigma_n and max_n are informative and not required.
REQUIRED_COLUMNS: tuple[str, ...] = ("n", "t1", "is_growth", "w_expansion")

#: The method caps the plain-map walk; no canonical number comes near it.
PLAIN_MAP_MAX_STEPS = 200_000
#: The most rows a generated file may have: 20 times the canonical set, about a minute
#: to write. (Asking for 10^30 would draw numbers until memory ran out.)
MAX_SAMPLES = 1_000_000

CACHE_ENV = "COLLATZ_RAY_CACHE"


# -- generation ---------------------------------------------------------------------------


def sample_values(*, samples: int, seed: int, max_bits: int) -> list[int]:
    """The method's N distinct odd numbers, in draw order.

    A private `random.Random(seed)` yields the very stream that `random.seed(seed)` gives
    the module-level functions (they share one implementation), without disturbing the
    caller's global random state.
    """
    _check_generation_args(samples=samples, max_bits=max_bits)
    rng = random.Random(seed)
    seen: set[int] = set()
    values: list[int] = []
    while len(values) < samples:
        b = rng.randint(2, max_bits)
        v = rng.randint(1 << (b - 1), (1 << b) - 1)
        v |= 1  # "+1 if even"; cannot leave [2^(b-1), 2^b - 1] because 2^b - 1 is odd
        if v not in seen:
            seen.add(v)
            values.append(v)
    return values


def plain_orbit_stats(n: int, max_steps: int = PLAIN_MAP_MAX_STEPS) -> tuple[int, int]:
    """(steps to reach 1, largest value) of the plain map n/2 or 3n+1, for n >= 1.

    Same result as `collatz_ray.syracuse.arith.plain_orbit_stats` (the reference, and the test
    oracle) at about a third of its cost, which dominates generating the file: each odd
    step is fused with the run of halvings after it (one shift, counted as k steps), and
    the peak is only compared after 3n+1 because halving never raises it. The step cap
    is honoured exactly, even in the middle of a run of halvings.
    """
    if n < 1:
        raise ValueError(f"plain_orbit_stats needs n >= 1, got {n}")
    steps = 0
    peak = n
    if not n & 1:
        steps = min((n & -n).bit_length() - 1, max_steps)
        n >>= steps
    while n != 1 and steps < max_steps:
        x = 3 * n + 1
        if x > peak:
            peak = x
        k = min((x & -x).bit_length() - 1, max_steps - steps - 1)
        n = x >> k
        steps += 1 + k
    return steps, peak


def evalset_rows(*, samples: int, seed: int, max_bits: int) -> Iterator[tuple[int, int, int, int, int, str]]:
    """Rows (n, t1, is_growth, sigma_n, max_n, w_expansion text) in file order."""
    for v in sample_values(samples=samples, seed=seed, max_bits=max_bits):
        t1 = syracuse(v)
        sigma, peak = plain_orbit_stats(v)
        # True division to a float, as the original did: the sha256 pins this rounding.
        w = math.log10(max(1, peak / v)) + 1
        yield v, t1, int(t1 > v), sigma, peak, f"{w:.4f}"


def write_evalset(
    path: str | Path,
    *,
    samples: int = CANONICAL_SAMPLES,
    seed: int = CANONICAL_SEED,
    max_bits: int = CANONICAL_MAX_BITS,
    expected_sha256: str | None = None,
) -> str:
    """Generate the CSV at `path` atomically and return its sha256.

    The rows go to a temporary file beside `path`, which replaces `path` only once it is
    complete (and matches `expected_sha256` when given), so an interrupted or wrong run
    never leaves a half file where a loader would find it.
    """
    _check_generation_args(samples=samples, max_bits=max_bits)  # before any file exists
    path = Path(path)
    if path.is_dir():  # checked now, not after seconds of work when os.replace fails
        raise UsageError(f"{path}: is a directory; expected a file name for the evaluation CSV")

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, durable=True, text=True) as handle:
            # The csv module's default dialect ends lines with CRLF; the original file was
            # written that way and the pinned sha256 depends on it.
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows(evalset_rows(samples=samples, seed=seed, max_bits=max_bits))
            handle.flush()
            digest = file_sha256(handle.name)
            if expected_sha256 is not None and digest != expected_sha256:
                raise RuntimeError(  # before the rename: a wrong file never takes the name
                    f"{path}: generated sha256 {digest} differs from the expected "
                    f"{expected_sha256}; the generator no longer follows docs/method.md"
                )
    except OSError as err:
        raise UsageError(f"{path}: cannot write ({err.strerror or err})") from None
    return digest


def _check_generation_args(*, samples: int, max_bits: int) -> None:
    if not 2 <= max_bits <= MAX_BITS:  # the metrics featurise every number of the file
        raise UsageError(f"max_bits must be from 2 to {MAX_BITS}, got {shown(max_bits)}")
    if not 1 <= samples <= MAX_SAMPLES:
        raise UsageError(f"samples must be from 1 to {MAX_SAMPLES}, got {shown(samples)}")
    # Odd numbers with 2..max_bits bits: 3, 5, ..., 2^max_bits - 1. Asking for more
    # would make the draw loop forever.
    available = (1 << (max_bits - 1)) - 1
    if samples > available:
        raise UsageError(
            f"samples must be <= {available} (the odd numbers of 2 to {max_bits} bits), got {samples}"
        )


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- the canonical file in the cache -------------------------------------------------------


def default_evalset_path(
    *, samples: int = CANONICAL_SAMPLES, seed: int = CANONICAL_SEED, max_bits: int = CANONICAL_MAX_BITS
) -> Path:
    """Cache location: $COLLATZ_RAY_CACHE, else ~/.cache/collatz_ray; the name encodes
    the parameters so differently made files never collide."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "collatz_ray"
    return Path(root) / f"evalset_n{samples}_seed{seed}_bits{max_bits}.csv"


def ensure_default_evalset() -> Path:
    """Path of the canonical file, generating it on first use (a few seconds).

    An existing file is trusted only if its sha256 is the canonical one (hashing 4 MB
    costs milliseconds); anything else is regenerated, because scores against an edited
    file would not be comparable. Concurrent callers each write their own temporary
    file and the identical results replace one another atomically.
    """
    path = default_evalset_path()
    if path.is_file() and file_sha256(path) == CANONICAL_SHA256:
        return path
    write_evalset(path, expected_sha256=CANONICAL_SHA256)
    return path


# -- loading -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EvalSet:
    """A validated evaluation CSV. n and t1 are exact Python ints (they exceed 64 bits).

    Instances are cached and shared between callers (the arrays are read-only): do not
    mutate the lists.
    """

    path: Path
    n: list[int]
    t1: list[int]
    is_growth: np.ndarray  # bool
    w_expansion: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.n)


def load_evalset(path: str | Path) -> EvalSet:
    """Load and check an evaluation CSV; raise UsageError with one line if it is wrong.

    Repeated loads of an unchanged file (same resolved path, mtime and size) return the
    same object at no cost.
    """
    try:
        resolved = Path(path).expanduser().resolve()
        stat = resolved.stat()
    except FileNotFoundError:
        raise UsageError(f"{path}: evaluation CSV not found") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read ({err.strerror or err})") from None
    except (ValueError, RuntimeError) as err:  # a NUL byte in a config's path; ~nosuchuser
        raise UsageError(f"{shown(str(path))}: not a usable file name ({err})") from None
    return _load_cached(resolved, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _load_cached(path: Path, mtime_ns: int, size: int) -> EvalSet:
    # mtime_ns and size are only part of the cache key: a rewritten file misses.
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return _parse(path, csv.reader(handle))
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text; expected a CSV with columns {','.join(COLUMNS)}") from None
    except csv.Error as err:
        raise UsageError(f"{path}: malformed CSV ({err})") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read ({err.strerror or err})") from None


def _parse(path: Path, reader: _csv.Reader) -> EvalSet:
    header = next(reader, None)
    if header is None:
        raise UsageError(f"{path}: empty file; expected a header line {','.join(COLUMNS)}")
    header = [name.strip() for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise UsageError(
            f"{path}: line 1: missing column(s) {','.join(missing)}; expected a header "
            f"with {','.join(REQUIRED_COLUMNS)}, got {shown(','.join(header))}"
        )
    i_n, i_t1, i_g, i_w = (header.index(name) for name in REQUIRED_COLUMNS)
    width = len(header)

    n_values: list[int] = []
    t1_values: list[int] = []
    growth: list[bool] = []
    weights: list[float] = []
    for row in reader:
        line = reader.line_num
        if not row:  # blank line
            continue

        def bad(index: int, expected: str) -> UsageError:
            return _field_error(path, line, index, header[index], expected, row[index])

        if len(row) != width:
            raise UsageError(f"{path}: line {line}: expected {width} fields like the header, got {len(row)}")
        try:
            n = int(row[i_n])
        except ValueError:
            raise bad(i_n, "an integer") from None
        if n < 1:
            raise bad(i_n, "an integer n >= 1")
        try:
            t1 = int(row[i_t1])
        except ValueError:
            raise bad(i_t1, "an integer") from None
        t = syracuse(n)
        if t1 != t:
            raise bad(i_t1, f"T(n) = {t}")
        is_growth = t1 > n
        if row[i_g].strip() != ("1" if is_growth else "0"):
            raise bad(i_g, f"{int(is_growth)} (t1 {'>' if is_growth else '<='} n)")
        try:
            w = float(row[i_w])
        except ValueError:
            raise bad(i_w, "a number") from None
        if not (math.isfinite(w) and w >= 0):  # a weight; NaN would poison every mean
            raise bad(i_w, "a finite number >= 0")
        n_values.append(n)
        t1_values.append(t1)
        growth.append(is_growth)
        weights.append(w)

    if not n_values:
        raise UsageError(f"{path}: no data rows; expected at least one row after the header")
    is_growth_arr = np.array(growth, dtype=bool)
    w_arr = np.array(weights, dtype=np.float64)
    is_growth_arr.flags.writeable = False
    w_arr.flags.writeable = False
    return EvalSet(path=path, n=n_values, t1=t1_values, is_growth=is_growth_arr, w_expansion=w_arr)


def _field_error(path: Path, line: int, index: int, name: str, expected: str, raw: str) -> UsageError:
    return UsageError(
        f"{path}: line {line}, column {index + 1} ({name}): expected {expected}, got {shown(raw)}"
    )
