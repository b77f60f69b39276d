"""python -m collatz_ray.bench_search: the fixed cost of a search trial on this machine,
start to first report, against a plain Tune trial (see
collatz_ray.benchmarks.search_overhead)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from collatz_ray._cli import ArgumentParser, exit_on_usage_error, positive_int


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m collatz_ray.bench_search", description=__doc__)
    p.add_argument("--trials", type=positive_int, default=3, help="trials of each kind (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


@exit_on_usage_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from collatz_ray.benchmarks.search_overhead import measure, render
    from collatz_ray.trainer.text import fitted_text

    figures = measure(args.trials)
    print(json.dumps(figures) if args.json else fitted_text(render(figures)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
