"""python -m collatz_ray.bench: how much faster the vectorised paths are than the plain
per-integer way of doing the same work, measured side by side on this machine (features,
a training epoch, a full evaluation, the counterexample scan of collatz_ray.verify).
See collatz_ray.benchmarks.speed for what is timed.

Ratios are reported, not enforced: the exit status is 0 unless an equality check fails.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from collatz_ray._cli import ArgumentParser, exit_on_interrupt, exit_on_usage_error, positive_int


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m collatz_ray.bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes (about a minute): CI and smoke runs")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=positive_int, default=None, metavar="N", help="torch.set_num_threads(N)")
    p.add_argument(
        "--only",
        choices=("features", "training", "evaluation", "verify"),
        action="append",
        help="run only these benchmarks (repeatable; default all)",
    )
    return p


@exit_on_interrupt
@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from collatz_ray.benchmarks import speed
    from collatz_ray.trainer.loop import resolve_device
    from collatz_ray.trainer.text import fitted_text

    if args.threads is not None:
        speed.set_threads(args.threads)
    device = resolve_device(args.device)
    only = tuple(args.only or speed.BENCHMARKS)
    say = (lambda _msg: None) if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        report = speed.run_benchmarks(quick=args.quick, device=device, only=only, say=say)
    except speed.CheckFailed as err:
        if args.json:
            print(json.dumps({"checks_passed": False, "error": str(err)}))
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.json:
        whole = set(only) == set(speed.BENCHMARKS)
        print(json.dumps(speed.to_json(report) if whole else speed.partial_json(report), default=float))
    else:
        print(fitted_text(speed.render(report)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
