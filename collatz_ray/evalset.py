"""python -m collatz_ray.evalset: write the evaluation CSV, or check one.

python -m collatz_ray.evalset                       # canonical file into the cache
python -m collatz_ray.evalset --samples 1000 --out small.csv
python -m collatz_ray.evalset --check my_eval.csv   # validate an existing file
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from collatz_ray._cli import ArgumentParser, exit_on_interrupt, exit_on_usage_error, seed_int
from collatz_ray.errors import UsageError
from collatz_ray.trainer.evalset_csv import (
    CACHE_ENV,
    CANONICAL_MAX_BITS,
    CANONICAL_SAMPLES,
    CANONICAL_SEED,
    CANONICAL_SHA256,
    default_evalset_path,
    file_sha256,
    load_evalset,
    write_evalset,
)


def parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m collatz_ray.evalset",
        description="Generate the evaluation CSV of docs/method.md (atomically), or check one. "
        f"The defaults make the canonical file (sha256 {CANONICAL_SHA256[:16]}...).",
    )
    # Generation flags default to None so that --check can refuse them instead of
    # silently ignoring them; the method's values are filled in by main().
    parser.add_argument("--samples", type=int, help=f"distinct numbers (default {CANONICAL_SAMPLES})")
    parser.add_argument("--seed", type=seed_int, help=f"random seed (default {CANONICAL_SEED})")
    parser.add_argument(
        "--max-bits", type=int, help=f"largest bit length drawn (default {CANONICAL_MAX_BITS})"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"output file (default: the cache path, ${CACHE_ENV} or ~/.cache/collatz_ray, "
        "named after samples, seed and max-bits)",
    )
    parser.add_argument(
        "--check",
        type=Path,
        metavar="FILE",
        help="validate an existing evaluation CSV instead of generating one",
    )
    return parser


@exit_on_interrupt
@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    given = {"samples": args.samples, "seed": args.seed, "max_bits": args.max_bits, "out": args.out}
    if args.check is not None:
        extra = [name for name, value in given.items() if value is not None]
        if extra:
            raise UsageError(f"--check validates a file; it does not take --{extra[0].replace('_', '-')}")
        evalset = load_evalset(args.check)
        digest = file_sha256(args.check)
        note = " (the canonical file)" if digest == CANONICAL_SHA256 else ""
        print(f"{args.check}: {len(evalset)} rows OK, sha256 {digest}{note}")
        return 0
    canonical = {"samples": CANONICAL_SAMPLES, "seed": CANONICAL_SEED, "max_bits": CANONICAL_MAX_BITS}
    params = {name: default if given[name] is None else given[name] for name, default in canonical.items()}
    out = args.out if args.out is not None else default_evalset_path(**params)
    start = time.perf_counter()
    digest = write_evalset(out, **params, expected_sha256=CANONICAL_SHA256 if params == canonical else None)
    print(f"{out}: {params['samples']} rows, sha256 {digest} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
