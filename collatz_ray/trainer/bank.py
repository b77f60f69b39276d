"""The counterexample bank: odd n at which a model's V failed, V(T n) >= V(n), gathered
per experiment and fed back to training as extra hard seeds (docs/method.md §4).

Two things write to it: the exact scan (`python -m collatz_ray.verify --bank`) and
hard-negative mining inside the trials of a search (the trial's process appends the mined
numbers that violate). Three things read it: the trainer (`TrainConfig.hard_seed_bank`),
the check of a search space that names one, and the results summary. The file is
EXPERIMENT/counterexamples.jsonl (BANK_FILE), one JSON object a line:

    {"n": "1161", "margin": -0.0132, "source": "mining", "trial": "3a711499",
     "epoch": 400, "sha256": null, "time": "2026-11-29T15:01:49Z"}

n is decimal text (numbers pass 2^64, and JSON readers lose integers past 2^53) of an
odd number from 3 to DECIMAL_MAX_BITS bits; margin is V(n) - V(T n) as the model
computed it (<= 0, or null when V was not finite); source is verify or mining; trial,
epoch (epochs trained when it was found) and sha256 (of the checkpoint file verify
scanned) may be null.

Appending. Several trials append at once, on one machine or on the machines of a shared
mount, so an append takes an exclusive flock on the file itself (a POSIX lock on NFS),
writes whole lines and lets go; it holds the lock for one write only, so waiting is
short. A writer that died mid-write (a full disk, a power cut) leaves a torn last line;
the next append, under the lock, cuts that fragment off (or ends the line, if what is
there is a complete record that only lacks its newline) before writing.

Reading. A torn last line is skipped: it is a write in progress or one cut short. Any
other line that is not a record is damage. The summary (`strict=False`) names it in a
note and keeps the rest; training from the bank (`strict=True`) refuses the file in one
line naming the file, the line and what was expected, since it would otherwise train
on a part of the bank without saying so. The file is read a line at a time, each line at
most MAX_LINE_BYTES and nested no deeper than records are (a line of 100000 nested lists
is damage like any other), and only a regular file of at most MAX_BANK_BYTES is read.

Duplicates are kept in the file (appends never read it) and merged on reading:
`distinct` gives one entry per n, its worst margin (a non-finite one counts as the
worst), how many distinct sightings (source, trial, epoch, checkpoint) recorded it, and
by which sources. A trial restarted from a checkpoint mines the same epochs again; those
records are the same sighting and count once.

Nothing here imports torch: the results summary reads the bank too.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from collatz_ray._bounded import Unreadable, lines, loads, open_regular, size_of
from collatz_ray.errors import UsageError, shown
from collatz_ray.syracuse.arith import DECIMAL_MAX_BITS

BANK_FILE = "counterexamples.jsonl"
SOURCES = ("verify", "mining")
#: A bank is read whole; 64 MiB is some 300,000 records of 128-bit numbers, far more
#: than a search writes (at most mine_count per mining round per trial).
MAX_BANK_BYTES = 64 * 2**20
#: The longest line read as a record: one of the largest numbers with every field is
#: under 5,000 bytes. A longer line is damage, passed over without being held.
MAX_LINE_BYTES = 64 * 2**10
#: Decimal digits of the largest number a record may hold (DECIMAL_MAX_BITS bits).
_MAX_DIGITS = len(str(2**DECIMAL_MAX_BITS))
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: What every record line must be, for the one line that refuses a damaged one.
EXPECTED = (
    f"one JSON object a line with n an odd decimal from 3 to {DECIMAL_MAX_BITS} bits, "
    f"margin a number or null, source {' or '.join(SOURCES)}"
)


@dataclass(frozen=True)
class Record:
    """One sighting of a counterexample."""

    n: int
    margin: float | None
    source: str
    trial: str | None = None
    epoch: int | None = None
    sha256: str | None = None
    time: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "n": str(self.n),
            "margin": self.margin,
            "source": self.source,
            "trial": self.trial,
            "epoch": self.epoch,
            "sha256": self.sha256,
            "time": self.time,
        }

    @property
    def sighting(self) -> tuple:
        return (self.source, self.trial, self.epoch, self.sha256)


def bankable(n: int) -> bool:
    """Whether a record may hold n: odd, at least 3, and writable as decimal text."""
    return n >= 3 and n & 1 == 1 and n.bit_length() <= DECIMAL_MAX_BITS


def new_record(
    n: int,
    *,
    margin: float | None,
    source: str,
    trial: str | None = None,
    epoch: int | None = None,
    sha256: str | None = None,
) -> Record:
    """A record stamped with the current time (UTC); a non-finite margin becomes null."""
    if not bankable(n):
        raise ValueError(f"not a bankable counterexample: a number of {n.bit_length()} bits")
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    return Record(
        n,
        float(margin) if margin is not None and math.isfinite(margin) else None,
        source,
        trial,
        epoch,
        sha256,
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def bank_file(path: str | Path) -> Path:
    """The bank a path names: an experiment directory's BANK_FILE, or the file itself."""
    path = Path(path)
    return path / BANK_FILE if path.is_dir() else path


# -- appending ---------------------------------------------------------------------------------
def append_records(path: Path, records: Sequence[Record]) -> None:
    """Append `records` to the bank file `path` (created if absent), whole lines under the
    file's lock. An unwritable file is one line (UsageError)."""
    if not records:
        return
    data = "".join(json.dumps(r.to_json()) + "\n" for r in records).encode()
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as err:
        raise UsageError(f"{path}: cannot open the counterexample bank ({err.strerror or err})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _end_the_last_line(fd)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as err:
        raise UsageError(
            f"{path}: cannot append to the counterexample bank ({err.strerror or err})"
        ) from None
    finally:
        os.close(fd)  # releases the lock


def _end_the_last_line(fd: int) -> None:
    """Under the lock, before appending: a last line without its newline was left by a
    writer that died. Cut it off, unless it is a complete record that only lacks the
    newline (a file edited by hand): then end it."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = size
    while start > 0:
        block = os.pread(fd, min(start, 1 << 16), start - min(start, 1 << 16))
        cut = block.rfind(b"\n")
        start -= len(block)
        if cut >= 0:
            start += cut + 1
            break
    tail = os.pread(fd, min(size - start, MAX_LINE_BYTES + 1), start)
    if len(tail) <= MAX_LINE_BYTES and _parse(tail.decode(errors="replace"))[0] is not None:
        os.write(fd, b"\n")
    else:
        os.ftruncate(fd, start)


# -- reading ------------------------------------------------------------------------------------
@dataclass
class Bank:
    """The records of a bank file in file order, and notes on the lines skipped."""

    file: Path
    records: list[Record] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_bank(path: str | Path, *, strict: bool) -> Bank:
    """The bank at `path` (an experiment directory or a bank file). `strict`: a missing,
    oversized or damaged file raises UsageError in one line; otherwise such problems
    are notes and the readable records are kept. A torn last line is skipped either way."""
    file = bank_file(path)
    bank = Bank(file)

    def problem(what: str) -> Bank:
        if strict:
            raise UsageError(f"{file}: {what}")
        bank.notes.append(f"{file}: {what}")
        return bank

    try:
        with open_regular(file) as handle:
            size = size_of(handle)
            if size > MAX_BANK_BYTES:
                return problem(
                    f"{size:,} bytes, more than the {MAX_BANK_BYTES:,} a counterexample bank may "
                    "hold; start a new one"
                )
            _read_records(handle, bank, problem, strict=strict)
    except FileNotFoundError:
        return problem(
            f"no counterexample bank here; expected an experiment directory holding "
            f"{BANK_FILE}, or such a file"
        )
    except Unreadable as err:
        return problem(err.why)
    except OSError as err:
        return problem(f"cannot be read ({err.strerror or err})")
    return bank


def _read_records(handle: IO[bytes], bank: Bank, problem: Callable[[str], Bank], *, strict: bool) -> None:
    """The records of an open bank file into `bank`, line by line; damaged lines to
    `problem`, a torn last line skipped (with a note unless strict)."""
    for line in lines(handle, max_line=MAX_LINE_BYTES, limit=MAX_BANK_BYTES):
        if line.text is not None and not line.text.strip():
            continue
        record, why = _parse(line.text) if line.text is not None else (None, "")
        if record is not None:  # a last line without its newline, if complete, counts
            bank.records.append(record)
        elif not line.ended:
            if not strict:
                bank.notes.append(f"{bank.file}: skipped the last line, cut short or being written")
        elif line.text is None:
            problem(f"line {line.number} is longer than {MAX_LINE_BYTES:,} bytes; expected {EXPECTED}")
        else:
            problem(f"line {line.number} is not a counterexample record ({why}); expected {EXPECTED}")


def _parse(line: str) -> tuple[Record | None, str]:
    """(the record of a line, "") or (None, why it is none)."""
    try:
        data = loads(line)
    except ValueError as err:
        return None, "nested too deep" if "nested deeper" in str(err) else "not JSON"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    text = data.get("n")
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS):
        return None, f"n is {shown(text)}"
    n = int(text)
    if not bankable(n):
        return None, f"n is {shown(text)}"
    margin = data.get("margin")
    if margin is not None and not (
        isinstance(margin, (int, float)) and not isinstance(margin, bool) and math.isfinite(margin)
    ):
        return None, f"margin is {shown(margin)}"
    if data.get("source") not in SOURCES:
        return None, f"source is {shown(data.get('source'))}"
    epoch = data.get("epoch")
    if epoch is not None and not (isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0):
        return None, f"epoch is {shown(epoch)}"
    sha256 = data.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
        return None, f"sha256 is {shown(sha256)}"
    trial, stamp = data.get("trial"), data.get("time")
    if not all(v is None or isinstance(v, str) for v in (trial, stamp)):
        return None, "trial or time is not text"
    return Record(
        n, None if margin is None else float(margin), data["source"], trial, epoch, sha256, stamp
    ), ""


# -- merging --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """A distinct number of the bank: the record of its worst margin, the number of
    distinct sightings of it, and the sources that saw it."""

    worst: Record
    times: int
    sources: tuple[str, ...]

    @property
    def n(self) -> int:
        return self.worst.n


def _badness(record: Record) -> tuple[int, float]:
    """Sort key, worst first: a non-finite V, then the lowest margin."""
    return (0, 0.0) if record.margin is None else (1, record.margin)


def distinct(records: Iterable[Record]) -> list[Entry]:
    """One entry per n, worst margin first (ties: the number first recorded first)."""
    worst: dict[int, Record] = {}
    sightings: dict[int, set[tuple]] = {}
    for record in records:
        if record.n not in worst or _badness(record) < _badness(worst[record.n]):
            worst[record.n] = record
        sightings.setdefault(record.n, set()).add(record.sighting)
    entries = [
        Entry(worst[n], len(seen), tuple(s for s in SOURCES if any(x[0] == s for x in seen)))
        for n, seen in sightings.items()
    ]
    return sorted(entries, key=lambda e: _badness(e.worst))


def ranked_numbers(path: str | Path) -> list[int]:
    """Every distinct number of the bank at `path`, worst margin first, for training;
    the file is read strictly (see read_bank)."""
    return [e.n for e in distinct(read_bank(path, strict=True).records)]


def recorded(path: Path, *, source: str, sha256: str | None) -> set[int]:
    """The numbers the bank file already holds from this source and checkpoint (empty
    when there is no file yet), so a scan run again adds nothing twice."""
    return {r.n for r in read_bank(path, strict=False).records if r.source == source and r.sha256 == sha256}


def add_scan_findings(
    path: Path, found: Mapping[int, float | None], *, sha256: str, trial: str | None, epoch: int | None
) -> int:
    """Append what an exact scan of one checkpoint found (n -> margin) that the bank does
    not hold from that checkpoint yet, so a scan run again adds nothing twice; how many
    records were added."""
    there = recorded(path, source="verify", sha256=sha256)
    records = [
        new_record(n, margin=margin, source="verify", trial=trial, epoch=epoch, sha256=sha256)
        for n, margin in sorted(found.items())
        if n not in there
    ]
    append_records(path, records)
    return len(records)
