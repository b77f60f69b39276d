"""python -m collatz_ray.scan_trials: scan every finished trial of experiments exactly,
and say which held-out count predicts the scan and how small the model can be.

    python -m collatz_ray.scan_trials results/A results/A-seeds --range 3..2**24 \
        --random 64:20000 --random 1024:20000 --address auto --bank --markdown scans.md --plot pareto.png

Each finished trial's newest reported checkpoint (completed or stopped by ASHA) is scanned
as `python -m collatz_ray.verify` scans one: every odd n of --range and --random's samples,
exactly, in chunks (on the Ray cluster at --address as tasks, else here). The result goes
to EXPERIMENT/scans/<trial>.json; a trial scanned before with the same flags is not
scanned again, so an interrupted run continues with the next trial. --bank appends each
scan's first --first counterexamples to the trial's own experiment bank. Then it prints
the table of every scanned model (parameters, the three held-out counts, the scan's
violation rate per bit length, pass rate, training time), each held-out count's rank
correlation with the scan's rate (with a bootstrap interval), each configuration over its
seeds against the largest, and the Pareto front (collatz_ray/results/scans.py). Without
--range and --random it only reports the scans already made.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collatz_ray._cli import ArgumentParser, add_scan_flags, exit_on_usage_error, positive_int
from collatz_ray.errors import UsageError

if TYPE_CHECKING:
    from collatz_ray.results.read import Experiment

FINISHED = ("completed", "stopped")


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m collatz_ray.scan_trials", description=__doc__)
    p.add_argument("experiments", nargs="+", type=Path, metavar="EXPERIMENT", help="experiment directories")
    add_scan_flags(p, range_example="3..2**24")
    p.add_argument("--seed", type=int, default=0, help="seed of --random (default 0)")
    p.add_argument(
        "--first",
        type=positive_int,
        default=10,
        metavar="K",
        help="counterexamples kept per scan (default 10)",
    )
    p.add_argument("--address", help="run the chunks on this Ray cluster (auto or host:port)")
    p.add_argument(
        "--bank", action="store_true", help="append the kept counterexamples to each experiment's bank"
    )
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write the report here")
    p.add_argument("--plot", type=Path, metavar="FILE", help="draw the Pareto front as a PNG here")
    return p


def scans_asked(args: argparse.Namespace) -> dict[str, Any]:
    """The scans of each trial by name ("range", "random"), checked before anything loads."""
    from collatz_ray._cli import parse_random, parse_range
    from collatz_ray.trainer.scan import DEFAULT_CHUNK, MAX_CHUNKS, Scan

    scans = {}
    if args.range is not None:
        start, stop = parse_range(args.range)
        scans["range"] = Scan(start=start, stop=stop)
    if args.random:
        scans["random"] = Scan(random=parse_random(args.random), seed=args.seed)
    for name, scan in scans.items():
        if -(-scan.count // DEFAULT_CHUNK) > MAX_CHUNKS:  # its list of chunks would not fit
            raise UsageError(
                f"--{name}: about 2**{scan.count.bit_length() - 1} numbers a trial, more than "
                f"{MAX_CHUNKS:,} chunks of {DEFAULT_CHUNK:,}; scan a smaller range"
            )
    return scans


@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from collatz_ray.results.read import is_experiment, load_experiment

    for path in args.experiments:
        if not is_experiment(path):
            raise UsageError(f"{path}: not an experiment directory (no experiment_state or trials)")
    for out in (args.markdown, args.plot):
        if out is not None and not out.parent.is_dir():
            raise UsageError(f"{out}: no directory {out.parent} to write into")
    scans = scans_asked(args)
    if scans:
        for path in args.experiments:
            scan_experiment(load_experiment(path), scans, args=args)

    from collatz_ray.results.scans import read_scans, render_markdown, write_pareto_plot

    scanned = read_scans([load_experiment(path) for path in args.experiments])
    report = render_markdown(scanned)
    print(report, end="")
    if args.markdown is not None:
        args.markdown.write_text(report)
    if args.plot is not None:
        print(f"Pareto front: {write_pareto_plot(scanned, args.plot)}")
    return 0


def scan_experiment(exp: Experiment, scans: dict[str, Any], *, args: argparse.Namespace) -> None:
    """Scan each finished trial of `exp` that has no scan of these flags yet."""
    from collatz_ray._atomic import write_atomically
    from collatz_ray.results.export import newest_checkpoint
    from collatz_ray.results.scans import SCAN_FORMAT, SCANS_DIR, read_scan, scan_file
    from collatz_ray.trainer.evalset_csv import file_sha256

    (exp.path / SCANS_DIR).mkdir(exist_ok=True)
    for trial in exp.trials:
        if trial.ending.kind not in FINISHED:
            continue
        try:
            checkpoint, epoch = newest_checkpoint(exp, trial)
        except UsageError as err:  # Ray may have removed it; the other trials still count
            print(f"{exp.name}/{trial.trial_id}: not scanned: {err}", flush=True)
            continue
        identity = {
            "checkpoint_sha256": file_sha256(checkpoint / "state.pt"),
            "asked": {name: scan.describe() for name, scan in scans.items()},
            "first": args.first,
        }
        path = scan_file(exp.path, trial.trial_id)
        if path.is_file():
            saved = read_scan(path)
            if {k: saved.get(k) for k in identity} == identity:
                continue
            raise UsageError(
                f"{path}: a scan of another checkpoint or with other flags; "
                "rerun with the same flags, or delete it to scan again"
            )
        report = scan_trial(checkpoint, scans, keep=args.first, address=args.address)
        report.update(
            format=SCAN_FORMAT, trial=trial.trial_id, epoch=epoch, checkpoint=str(checkpoint), **identity
        )
        if args.bank:
            report["bank"] = bank_counterexamples(exp.path, report, trial=trial.trial_id, epoch=epoch)
        write_atomically(path, json.dumps(report, indent=1) + "\n", durable=True)
        print(one_line(exp.name, trial.trial_id, report), flush=True)


def scan_trial(checkpoint: Path, scans: dict[str, Any], *, keep: int, address: str | None) -> dict[str, Any]:
    """The model at `checkpoint` scanned as each of `scans` asks: its shape, parameter
    count, and per scan the merged summary (trainer/scan.py's Summary)."""
    import torch

    from collatz_ray.syracuse.features import FeatureSpec
    from collatz_ray.trainer.loading import load_model
    from collatz_ray.trainer.scan import Summary, scan_locally

    loaded = load_model(checkpoint, overrides={"device": "cpu"})
    config = loaded.config
    spec = FeatureSpec(config.lookahead, k_only=config.k_only, k_shifted=config.k_shifted)
    out: dict[str, Any] = {
        "model": {
            "layers": list(config.hidden_layers),
            "lookahead": config.lookahead,
            "linear": config.linear,
        },
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "test_seeds": list(config.test_seeds),
        "scans": {},
    }
    for name, scan in scans.items():
        start = time.perf_counter()
        pending = list(enumerate(scan.chunks()))
        if address is not None:
            from collatz_ray.search.ray.scan_tasks import scan_on_ray

            results = scan_on_ray(address, loaded, spec, scan, pending, keep=keep)
        else:
            results = scan_locally(loaded.model, spec, scan, pending, keep=keep, device=torch.device("cpu"))
        summary = Summary(keep=keep)
        for result in results:
            summary.add(result)
        out["scans"][name] = {
            **scan.describe(),
            **summary.to_json(),
            "wall_seconds": time.perf_counter() - start,
        }
    return out


def bank_counterexamples(
    experiment: Path, report: dict[str, Any], *, trial: str, epoch: int
) -> dict[str, Any]:
    """Append the kept counterexamples of every scan that the bank does not hold from this
    checkpoint yet; how many were added and how many lie on no held-out trajectory."""
    from collatz_ray.syracuse.arith import trajectory
    from collatz_ray.trainer.bank import add_scan_findings, bank_file
    from collatz_ray.trainer.heldout import big_seeds

    found = {int(e["n"]): e["margin"] for part in report["scans"].values() for e in part["counterexamples"]}
    added = add_scan_findings(
        bank_file(experiment), found, sha256=report["checkpoint_sha256"], trial=trial, epoch=epoch
    )
    held_out = {v for seed in report["test_seeds"] for v in trajectory(seed)} | {
        v for seed in big_seeds() for v in trajectory(seed)
    }
    return {"added": added, "off_held_out": sum(1 for n in found if n not in held_out)}


def one_line(experiment: str, trial: str, report: dict[str, Any]) -> str:
    parts = [f"{experiment}/{trial}", f"{report['parameters']:,} parameters"]
    for name, part in report["scans"].items():
        parts.append(
            f"{name}: {part['violations']:,}/{part['numbers']:,} violate "
            f"({part['numbers'] / max(part['wall_seconds'], 1e-9):,.0f} n/s)"
        )
    if "bank" in report:
        parts.append(f"banked {report['bank']['added']}")
    return "; ".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
