"""A run directory's files: how they are written and read back, trusting them no more
than needed.

    config.yaml                     the resolved TrainConfig
    metrics.jsonl                   one JSON object per evaluation
    checkpoints/epoch_XXXXXXXX/     state.pt (everything needed to continue exactly),
                                    model.pth (the weights as a seed-format state_dict),
                                    checksum.json (the sha256 of both)
    model.pth                       the final weights, seed format
    run.lock                        while a process works in the directory (collatz_ray._lock)

Reading. Every file goes through torch.load(weights_only=True): tensors and plain data
load, while a pickled object, which would run code as it loads, is refused in one line.
(So the sampler saves its mined numbers as hex strings: pickle writes an integer of more
than 2040 bits in a form weights_only refuses.) A checkpoint's files are compared with
checksum.json first; a mismatch is refused, naming the newest older checkpoint that is
intact. A checkpoint written before checksums existed has no checksum.json and is read
unverified.

Writing. A crash at any point loses nothing that was computed. The checkpoint's files
are written and fsynced under a temporary name; then its evaluation is appended to
metrics.jsonl and fsynced; only then is the directory renamed into place. A crash
before the rename leaves an evaluation without its checkpoint: resuming from the
previous checkpoint drops that line (truncate_metrics) and computes it again, the same.
A line cut short by a crash mid-append is the last line, and resuming drops it too.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch

from collatz_ray._atomic import sync_directory, write_atomically, write_synced
from collatz_ray._lock import hold_lock
from collatz_ray.errors import UsageError, shown
from collatz_ray.trainer.text import strict_json

CHECKPOINT_FORMAT = 1
KEEP_CHECKPOINTS = 2
METRICS_FILE = "metrics.jsonl"
CHECKSUM_FILE = "checksum.json"
LOCK_FILE = "run.lock"
#: What makes a directory a run that a new one must not overwrite unasked.
RUN_MARKERS = ("config.yaml", METRICS_FILE, "checkpoints")
#: What `--overwrite` removes: the trainer's files, and the record of where an exported
#: run came from (results --export-best), which would describe the old run.
RUN_FILES = (*RUN_MARKERS, "model.pth", "exported_from.json")
#: Keys a state.pt must hold to continue a run.
STATE_KEYS = ("config", "epoch", "model", "optimizer", "scheduler", "sampler", "torch_rng")


# -- the run directory -------------------------------------------------------------------


def run_lock(run_dir: Path) -> AbstractContextManager[None]:
    """Held by whoever works in `run_dir`: a second process is refused, naming the first."""
    return hold_lock(Path(run_dir) / LOCK_FILE, what=f"run directory {run_dir}")


def holds_run(run_dir: Path) -> bool:
    return any((Path(run_dir) / name).exists() for name in RUN_MARKERS)


def clear_run(run_dir: Path) -> None:
    """Remove a run's files (for --overwrite), so a new run never mixes with an old one;
    with them the temporary files of write_atomically that a crash left behind."""
    for path in [*(Path(run_dir) / name for name in RUN_FILES), *Path(run_dir).glob(".*.tmp")]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


# -- checkpoints: finding and checking --------------------------------------------------


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint directory, intact or not."""
    found = sorted((Path(run_dir) / "checkpoints").glob("epoch_*/state.pt"))
    return found[-1].parent if found else None


def resumable_checkpoint(run_dir: Path) -> tuple[Path | None, list[str]]:
    """(the newest intact checkpoint, the problems of the newer ones passed over)."""
    problems: list[str] = []
    for state in sorted((Path(run_dir) / "checkpoints").glob("epoch_*/state.pt"), reverse=True):
        problem = checkpoint_problem(state.parent)
        if problem is None:
            return state.parent, problems
        problems.append(problem)
    return None, problems


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why the files of a checkpoint directory do not match its checksum.json, if they
    do not (a checkpoint without checksum.json predates checksums: None)."""
    expected = _checksums(checkpoint)
    if isinstance(expected, str):
        return expected
    for name, digest in (expected or {}).items():
        try:
            actual = hashlib.sha256((checkpoint / name).read_bytes()).hexdigest()
        except OSError as err:
            return f"{checkpoint / name}: cannot read ({err.strerror or err})"
        if actual != digest:
            return f"{checkpoint / name}: checksum mismatch (corrupted?)"
    return None


def _checksums(checkpoint: Path) -> dict[str, str] | str | None:
    """checksum.json's digests by file name; None if there is none; a problem if it is
    not what save_checkpoint writes."""
    path = checkpoint / CHECKSUM_FILE
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return f"{path}: unreadable (corrupted?)"
    digests = data.get("sha256") if isinstance(data, dict) else None
    if not (
        isinstance(digests, dict)
        and digests
        and all(isinstance(k, str) and "/" not in k and isinstance(v, str) for k, v in digests.items())
    ):
        return f"{path}: not file names with their sha256 (corrupted?)"
    return digests


def _read_verified(file: Path) -> bytes:
    """The bytes of a file, checked against checksum.json if it lies in a checkpoint
    directory that has one. (A model.pth elsewhere is not ours to check, and a
    checksum.json beside it may be anyone's.)"""
    try:
        data = file.read_bytes()
    except OSError as err:
        raise UsageError(f"{file}: cannot read ({err.strerror or err})") from None
    expected = _checksums(file.parent) if (file.parent / "state.pt").is_file() else None
    problem = expected if isinstance(expected, str) else None
    if isinstance(expected, dict):
        if file.name not in expected:
            problem = f"{file}: not listed in {CHECKSUM_FILE} (corrupted?)"
        elif hashlib.sha256(data).hexdigest() != expected[file.name]:
            problem = f"{file}: checksum mismatch (corrupted?)"
    if problem is not None:
        raise UsageError(f"{problem}; {_previous_intact(file.parent)}")
    return data


def _previous_intact(checkpoint: Path) -> str:
    """Which older checkpoint beside this one a user can fall back to, in words."""
    older = sorted(p.parent for p in checkpoint.parent.glob("*/state.pt") if p.parent.name < checkpoint.name)
    for candidate in reversed(older):
        if checkpoint_problem(candidate) is None:
            resume = (
                f"; train --resume {checkpoint.parent.parent} falls back to it"
                if checkpoint.parent.name == "checkpoints"
                else ""
            )
            return f"the previous checkpoint {candidate} is intact{resume}"
    return "no earlier checkpoint beside it is intact"


def _load(file: Path, data: bytes, what: str) -> Any:
    """torch.load of tensors and plain data only; anything else is refused in one line."""
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Weights only" in str(err):
            raise UsageError(
                f"{file}: refused: it holds more than tensors and plain data (a pickled "
                "object, which could run code when loaded); it was not loaded"
            ) from None
        raise UsageError(f"{file}: not {what} (UnpicklingError: {shown(str(err))})") from None
    except Exception as err:  # a truncated or foreign file: say so in one line
        raise UsageError(f"{file}: not {what} ({type(err).__name__}: {shown(str(err))})") from None


# -- checkpoints: reading -----------------------------------------------------------------


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The state of a checkpoint directory (or its state.pt), verified and checked."""
    path = Path(path)
    state_file = path / "state.pt" if path.is_dir() else path
    if not state_file.is_file():
        raise UsageError(f"{path}: no checkpoint found (expected {state_file})")
    state = _load(state_file, _read_verified(state_file), "a readable checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"{state_file}: not a collatz-ray checkpoint (format {CHECKPOINT_FORMAT})")
    missing = [key for key in STATE_KEYS if key not in state]
    if missing or not isinstance(state["config"], dict) or not _is_epoch(state["epoch"]):
        raise UsageError(
            f"{state_file}: not a complete collatz-ray checkpoint "
            f"({'missing ' + ', '.join(missing) if missing else 'bad config or epoch'})"
        )
    return state


def _is_epoch(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_weights(
    path: Path, *, flag: str = "--checkpoint"
) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """(weights, saved config) of a checkpoint directory or state.pt, or (weights, None)
    of a seed-format state_dict such as the published experiment's model.pth."""
    weights, config, _epoch = read_model_file(path, flag=flag)
    return weights, config


def read_model_file(
    path: Path, *, flag: str = "--checkpoint"
) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, int | None]:
    """read_weights, and the epoch a checkpoint was saved at (None for a state_dict)."""
    path = Path(path)
    if path.is_dir():
        path = path / "state.pt" if (path / "state.pt").exists() else path / "model.pth"
    if not path.is_file():
        raise UsageError(f"{flag} {path}: no such file")
    obj = _load(path, _read_verified(path), "a readable PyTorch file")
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        if isinstance(obj.get("model"), dict) and isinstance(obj.get("config"), dict):
            return obj["model"], obj["config"], obj["epoch"] if _is_epoch(obj.get("epoch")) else None
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, None, None
    raise UsageError(f"{flag} {path}: neither a collatz-ray checkpoint nor a state_dict")


def seed_format(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights on the CPU, in the published experiment's state_dict layout."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


# -- checkpoints and metrics: writing -------------------------------------------------------


def save_checkpoint(
    run_dir: Path, state: dict[str, Any], model: torch.nn.Module, *, epoch: int, metrics: dict[str, Any]
) -> Path:
    """Record one evaluation: `state` (plus the format tag), the seed-format weights and
    their checksums as the checkpoint of `epoch`, and `metrics` as a line of
    metrics.jsonl, in the order the module docstring gives. Keeps the newest
    KEEP_CHECKPOINTS checkpoints; returns the new one's directory."""
    root = run_dir / "checkpoints"
    final = root / f"epoch_{epoch:08d}"
    partial = root / f".partial_{epoch:08d}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    digests = {}
    for name, obj in (
        ("state.pt", {"format": CHECKPOINT_FORMAT, **state}),
        ("model.pth", seed_format(model)),
    ):
        data = torch_bytes(obj)
        write_synced(partial / name, data)
        digests[name] = hashlib.sha256(data).hexdigest()
    write_synced(partial / CHECKSUM_FILE, json.dumps({"sha256": digests}, indent=1).encode())
    sync_directory(partial)
    append_metrics(run_dir / METRICS_FILE, metrics)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    sync_directory(root)
    for old in sorted(root.glob("epoch_*"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def remove_partial_checkpoints(run_dir: Path) -> None:
    """Checkpoints a crash left unfinished (never renamed into place)."""
    for partial in (Path(run_dir) / "checkpoints").glob(".partial_*"):
        shutil.rmtree(partial, ignore_errors=True)


def append_metrics(path: Path, metrics: dict[str, Any]) -> None:
    """One line of strict JSON (non-finite numbers as null), on disk when this returns."""
    with path.open("a") as f:
        f.write(strict_json(metrics) + "\n")
        f.flush()
        os.fsync(f.fileno())


def truncate_metrics(path: Path, *, after_epoch: int) -> None:
    """On resume, drop evaluations past the checkpoint so none is recorded twice, and a
    last line a crash cut short. Any other line that is not an evaluation is refused:
    the file was damaged some other way, and silently dropping lines would hide it."""
    if not path.exists():
        return
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    kept = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        epoch = _line_epoch(line)
        if epoch is None:
            if number == len(lines):  # the one a crash can cut short
                continue
            raise UsageError(
                f"{path}: line {number} is not an evaluation (damaged?); "
                f"expected one JSON object with an epoch per line"
            )
        if epoch <= after_epoch:
            kept.append(line)
    write_atomically(path, "".join(line + "\n" for line in kept), durable=True)


def _line_epoch(line: str) -> int | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    epoch = row.get("epoch") if isinstance(row, dict) else None
    return epoch if _is_epoch(epoch) else None


@contextlib.contextmanager
def restoring(checkpoint: Path) -> Iterator[None]:
    """Around loading a checkpoint's state into the run's objects: a state that does not
    fit them (made by hand, or by another version) is one line, not a traceback."""
    try:
        yield
    except UsageError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
        raise UsageError(
            f"{checkpoint}: the saved state does not fit this run ({type(err).__name__}: {shown(str(err))})"
        ) from None
