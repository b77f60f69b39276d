"""python -m collatz_ray.verify: scan a model exactly for counterexamples, odd n with
V(T n) >= V(n) (a non-finite V counts as one).

    python -m collatz_ray.verify --checkpoint results/runs/run7 --range 3..2**32 --out scan.json
    python -m collatz_ray.verify --checkpoint model.pth --lookahead 100 --layers 128,128,128 --random 256:100000

`--range A..B` scans every odd n with A <= n < B (A >= 2: T(1) = 1 ties by definition);
the ends are integers or sums of powers such as 2**40+2**20. `--random BITS:COUNT` draws
COUNT odd numbers of exactly BITS bits (seeded by --seed; repeatable). The checkpoint is
anything `evaluate` reads, with the same shape flags. It prints how many n violate, the
first --first of them with their margins, the density per bit length and the scan rate;
--json prints one JSON object. With --out the report goes to that file and the scan's
progress to FILE.progress beside it after every chunk: the same command continues an
interrupted scan; another checkpoint or other flags are refused. --address runs the
chunks as tasks on a Ray cluster (on GPUs when it has them). --bank EXPERIMENT appends
the counterexamples listed to the experiment's counterexample bank (its
counterexamples.jsonl, or a .jsonl file named), tagged with the checkpoint's sha256,
epoch and trial, where later trainings take them as hard seeds (docs/training.md).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collatz_ray._bounded import read_json
from collatz_ray._cli import (
    ArgumentParser,
    add_scan_flags,
    exit_on_interrupt,
    exit_on_usage_error,
    integer_expression,
    number,
    parse_random,
    parse_range,
    positive_int,
    resume_command,
)
from collatz_ray._interrupt import Interrupted
from collatz_ray._progress import ProgressBar
from collatz_ray.errors import UsageError, printable
from collatz_ray.trainer.config import add_config_flags, flag_overrides
from collatz_ray.trainer.text import short_decimal

if TYPE_CHECKING:
    from collatz_ray.trainer.loading import LoadedModel
    from collatz_ray.trainer.scan import Progress, Scan

MODEL_FLAGS = ("lookahead", "layers", "linear", "k_only", "k_shifted", "device")


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m collatz_ray.verify", description=__doc__)
    p.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="run or exported-trial directory, checkpoint directory, state.pt, or a seed-format model.pth",
    )
    what = p.add_mutually_exclusive_group(required=True)
    add_scan_flags(what, range_example="3..2**32")
    # Not `seed`: that name is a TrainConfig field, which flag_overrides would collect.
    p.add_argument("--seed", dest="sample_seed", type=int, help="seed of --random (default 0)")
    p.add_argument(
        "--chunk",
        type=_chunk_size,
        default=None,
        metavar="N",
        help="numbers per chunk, the unit of progress and of Ray tasks (default 2**20)",
    )
    p.add_argument(
        "--first",
        type=positive_int,
        default=None,
        metavar="K",
        help="counterexamples listed, the first in scan order (default 10)",
    )
    p.add_argument("--out", type=Path, help="write the JSON report here; progress goes to OUT.progress")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--address", help="run the chunks on this Ray cluster (auto or host:port)")
    p.add_argument(
        "--bank",
        type=Path,
        metavar="EXPERIMENT",
        help="append the counterexamples listed to this experiment's counterexamples.jsonl "
        "(or to this .jsonl file)",
    )
    add_config_flags(p, names=MODEL_FLAGS)
    return p


_chunk_size = number(integer_expression, lambda v: v >= 1, "an integer >= 1 such as 2**20")


def build_scan(args: argparse.Namespace) -> Scan:
    from collatz_ray.trainer.scan import DEFAULT_CHUNK, MAX_CHUNK, MAX_CHUNKS, Scan

    chunk = args.chunk or DEFAULT_CHUNK
    if chunk > MAX_CHUNK:
        raise UsageError(
            f"--chunk {args.chunk}: more than 2**{MAX_CHUNK.bit_length() - 1} numbers; a chunk is "
            "the unit of progress, kept only when it is done: give a smaller one"
        )
    if args.range is not None:
        if args.sample_seed is not None:
            raise UsageError("--seed goes with --random; a --range scan has no randomness")
        start, stop = parse_range(args.range)
        scan = Scan(start=start, stop=stop, chunk=chunk)
    else:
        scan = Scan(random=parse_random(args.random), seed=args.sample_seed or 0, chunk=chunk)
    if -(-scan.count // chunk) > MAX_CHUNKS:
        raise UsageError(
            f"--chunk {chunk}: about 2**{scan.count.bit_length() - 1} numbers would make more "
            f"than {MAX_CHUNKS:,} chunks; scan a smaller range or give a larger --chunk"
        )
    return scan


def bank_target(path: Path) -> Path:
    """The bank file --bank names: an experiment directory's, or a .jsonl file whose
    directory exists."""
    from collatz_ray.trainer.bank import BANK_FILE

    if path.is_dir():
        return path / BANK_FILE
    if path.suffix == ".jsonl" and path.parent.is_dir():
        return path
    raise UsageError(
        f"--bank {path}: expected an experiment directory, or a .jsonl file in an existing directory"
    )


@exit_on_interrupt
@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.address is not None:  # a local scan uses no Ray
        from collatz_ray.search.versions import check_tested_versions

        check_tested_versions(("ray",))
    scan = build_scan(args)
    bank = None if args.bank is None else bank_target(args.bank)
    progress_path = progress_file(args.out)
    from collatz_ray.trainer.loading import load_model
    from collatz_ray.trainer.scan import DEFAULT_KEEP, Progress

    keep = args.first or DEFAULT_KEEP
    loaded = load_model(args.checkpoint, overrides=flag_overrides(args))
    progress = Progress(progress_path, scan_identity(loaded, scan, keep=keep), keep=keep)
    try:
        numbers, seconds = run_scan(args, loaded, scan, progress)
    except KeyboardInterrupt as stop:
        raise Interrupted.of(stop, kept=what_was_kept(progress, scan, resume_command(main, argv))) from None
    report = scan_report(loaded, scan, progress, numbers=numbers, seconds=seconds)
    refused = None
    if bank is not None:
        try:
            report["bank"] = add_to_bank(bank, report, loaded)
        except UsageError as err:  # the report is still written and shown; then the error
            refused = err
    if args.out is not None:
        from collatz_ray._atomic import write_atomically

        # Durable: the report is the result of the whole scan.
        write_atomically(args.out, json.dumps(report, indent=1) + "\n", durable=True)
    print(json.dumps(report) if args.json else render(report, scan_text=args.range or ", ".join(args.random)))
    if refused is not None:
        raise refused
    return 0


def progress_file(out: Path | None) -> Path | None:
    """Where the progress of a scan with --out OUT goes: OUT.progress (None without --out)."""
    if out is None:
        return None
    if out.is_dir():
        raise UsageError(f"--out {out}: a directory; name the report file")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: no directory {out.parent} to write into")
    return out.with_name(out.name + ".progress")


def scan_identity(loaded: LoadedModel, scan: Scan, *, keep: int) -> dict[str, Any]:
    """What a progress file is tied to: the checkpoint's bytes, the model's shape, the
    scan and the number of counterexamples kept."""
    from collatz_ray.trainer.evalset_csv import file_sha256

    config = loaded.config
    return {
        "checkpoint_sha256": file_sha256(loaded.file),
        "model": {
            "layers": list(config.hidden_layers),
            "lookahead": config.lookahead,
            "k_only": config.k_only,
            "k_shifted": config.k_shifted,
        },
        "scan": scan.describe(),
        "first": keep,
    }


def run_scan(
    args: argparse.Namespace, loaded: LoadedModel, scan: Scan, progress: Progress
) -> tuple[int, float]:
    """Scan the chunks the progress does not hold yet, here or on Ray (--address),
    recording each as it finishes; (numbers scanned, seconds) of this run."""
    from collatz_ray.syracuse.features import FeatureSpec
    from collatz_ray.trainer.loop import resolve_device

    config = loaded.config
    spec = FeatureSpec(config.lookahead, k_only=config.k_only, k_shifted=config.k_shifted)
    chunks = scan.chunks()
    pending = [(i, c) for i, c in enumerate(chunks) if i not in progress.done]
    keep = progress.summary.keep
    if args.address is not None:
        from collatz_ray.search.ray.scan_tasks import scan_on_ray

        results = scan_on_ray(args.address, loaded, spec, scan, pending, keep=keep)
    else:
        from collatz_ray.trainer.scan import scan_locally

        device = resolve_device(config.device)
        results = scan_locally(loaded.model, spec, scan, pending, keep=keep, device=device)
    start, scanned = time.perf_counter(), 0
    bar = ProgressBar(len(chunks))
    try:
        for result in results:
            progress.record(result)
            scanned += result["numbers"]
            seconds = time.perf_counter() - start
            rate = scanned / seconds if seconds > 0 else 0.0
            bar.show(len(progress.done), f"chunk {len(progress.done)}/{len(chunks)} {rate:,.0f} n/s")
    finally:
        bar.clear()
    return scanned, time.perf_counter() - start


def what_was_kept(progress: Progress, scan: Scan, command: str) -> str:
    """The line of an interrupted scan: what its progress file holds and how to go on."""
    done, total = len(progress.done), len(scan.chunks())
    if progress.path is None:
        return f"{done} of {total} chunks were scanned and not kept (no --out); --out FILE keeps a scan's progress"
    return f"{done} of {total} chunks are kept in {progress.path}; continue with: {command}"


def scan_report(
    loaded: LoadedModel, scan: Scan, progress: Progress, *, numbers: int, seconds: float
) -> dict[str, Any]:
    chunks = len(scan.chunks())
    return {
        "checkpoint": str(loaded.file),
        **progress.identity,
        "complete": len(progress.done) == chunks,
        "chunks": chunks,
        "chunks_done": len(progress.done),
        **progress.summary.to_json(),
        "numbers_this_run": numbers,
        "seconds_this_run": seconds,
        "numbers_per_second": numbers / seconds if numbers and seconds > 0 else None,
    }


def add_to_bank(bank: Path, report: dict[str, Any], loaded: LoadedModel) -> dict[str, Any]:
    """Append the report's counterexamples that the bank does not hold yet from this
    checkpoint (a scan run again adds nothing twice); what was added, for the report."""
    from collatz_ray.trainer.bank import add_scan_findings

    trial = trial_of(loaded.file, experiment=bank.parent)
    found = {int(e["n"]): e["margin"] for e in report["counterexamples"]}
    added = add_scan_findings(
        bank, found, sha256=report["checkpoint_sha256"], trial=trial, epoch=loaded.epoch
    )
    return {
        "file": str(bank),
        "added": added,
        "already": len(found) - added,
        "trial": trial,
        "epoch": loaded.epoch,
    }


#: exported_from.json names a trial and its experiment: a few hundred bytes.
EXPORTED_BYTES = 64 * 2**10
_TRIAL_ID = re.compile(r"[\w-]{1,64}")


def trial_of(file: Path, *, experiment: Path) -> str | None:
    """The search trial whose checkpoint `file` is: one a trial keeps
    (EXPERIMENT/collatz_trial_<trial>/checkpoint_.../state.pt, or before 0.3
    EXPERIMENT/_train/<trial>/checkpoint_.../state.pt), or one exported by
    `results --export-best` (DIR/checkpoints/epoch_.../state.pt beside DIR/exported_from.json)."""
    from collatz_ray.search.settings import TRAIN_DIR, TRIAL_PREFIX

    try:
        parts = file.resolve().relative_to(experiment.resolve()).parts
    except ValueError:
        parts = ()
    if len(parts) >= 3 and parts[0] == TRAIN_DIR:
        return parts[1]
    if len(parts) >= 3 and parts[0].startswith(TRIAL_PREFIX):
        return parts[0].removeprefix(TRIAL_PREFIX)
    try:
        exported = read_json(file.parent.parent.parent / "exported_from.json", limit=EXPORTED_BYTES)
        trial = exported["trial_id"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return trial if isinstance(trial, str) and _TRIAL_ID.fullmatch(trial) else None


def render(report: dict[str, Any], *, scan_text: str) -> str:
    bad, total = report["violations"], report["numbers"]
    rate = report["numbers_per_second"]
    lines = [
        f"checkpoint {printable(report['checkpoint'])} (sha256 {report['checkpoint_sha256'][:16]}...)",
        f"scanned    {total:,} odd n ({scan_text}), chunks {report['chunks_done']}/{report['chunks']}"
        + ("" if report["complete"] else " (incomplete)"),
        f"violations {bad:,} with V(T n) >= V(n) or V not finite"
        + (f" ({bad / total:.3g} of those scanned)" if total else ""),
        f"rate       {rate:,.0f} n/s ({report['numbers_this_run']:,} in {report['seconds_this_run']:.1f} s)"
        if rate
        else "rate       - (nothing left to scan: the progress file says every chunk is done)",
    ]
    if report["counterexamples"]:
        lines += [
            "",
            f"first {len(report['counterexamples'])} counterexamples:",
            f"{'n':>24} {'T(n)':>24} {'V(n)':>12} {'V(T n)':>12} {'margin':>12}",
        ]
        lines += [
            f"{short_decimal(e['n']):>24} {short_decimal(e['t']):>24} "
            f"{_num(e['v_n'])} {_num(e['v_t'])} {_num(e['margin'])}"
            for e in report["counterexamples"]
        ]
    lines += ["", f"{'bits':>6} {'numbers':>14} {'violations':>12} {'density':>10}"]
    lines += [
        f"{b['bits']:>6} {b['numbers']:>14,} {b['violations']:>12,} {b['density']:>10.3g}"
        for b in report["buckets"]
    ]
    if "bank" in report:
        banked = report["bank"]
        lines += [
            "",
            f"banked {banked['added']} new counterexamples in {printable(banked['file'])}"
            + (f" ({banked['already']} there already)" if banked["already"] else ""),
        ]
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return f"{'not finite':>12}" if value is None else f"{value:>12.6g}"


if __name__ == "__main__":
    raise SystemExit(main())
