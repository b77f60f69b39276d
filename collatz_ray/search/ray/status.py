"""What a person watching a search sees every 30 s: one table that fits 120 columns.

Tune's own reporter is close but misleads here: its ASHA line shows negated
objectives by report count, its "Result logdir" points into Ray's session directory,
a trial that is still starting looks like one that reports nothing, and with many
searched settings its table runs to ~290 columns. This keeps Tune's timing (when to
report) and replaces what is printed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ray import tune

from collatz_ray.search.objective import DEFAULT_OBJECTIVE, METRIC, TIME_ATTR
from collatz_ray.trainer import metrics as registry

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

WIDTH = 120
#: Short column names for the settings the shipped spaces search.
SHORT = {
    "lookahead": "la",
    "target_type": "target",
    "lr": "lr",
    "layers": "layers",
    "linear": "lin",
    "beta_init": "beta0",
    "decay_start": "dstart",
    "decay_len": "dlen",
    "min_anchor": "minanc",
    "use_t1": "t1",
    "use_t4": "t4",
    "use_t8": "t8",
    "mine_negatives": "mine",
    "mine_start": "mstart",
    "mine_interval": "mint",
    "mine_count": "mcount",
    "mine_pool": "mpool",
    "batch_size": "batch",
    "hard_ratio": "hard",
    "curriculum": "curric",
    "start_seeds": "seeds0",
    "ramp_len": "ramp",
    "num_hard_seeds": "nseeds",
    "k_only": "konly",
    "k_shifted": "kshift",
    "seed": "seed",
}


def short_name(name: str) -> str:
    return SHORT.get(name, name[:8])


def legend(parameters: Sequence[str]) -> str:
    """Printed once when the search starts: what the short column names stand for,
    wrapped at WIDTH."""
    pairs = [f"{short_name(p)}={p}" for p in parameters if short_name(p) != p]
    if "layers" in parameters:
        pairs.append("layers: depth x widest")
    lines, line = [], "Columns:"
    for pair in pairs:
        if len(line) + len(pair) + 2 > WIDTH:
            lines.append(line + ",")
            line = "        "
        line += (" " if line.endswith(":") or not line.strip() else ", ") + pair
    return "\n".join([*lines, line])


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return f"{len(value)}x{max(value)}" if value else "0"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)[:10]


class SearchStatus(tune.CLIReporter):
    """Tune's reporter, printing collatz-ray's status block instead of Tune's."""

    def __init__(
        self,
        *,
        parameters: Sequence[str],
        header: str,
        rungs: Sequence[int],
        per_trial: str,
        report_every_s: int = 30,
    ) -> None:
        super().__init__(max_report_frequency=report_every_s)
        self._parameters = list(parameters)
        self._header, self._rungs, self._per_trial = header, list(rungs), per_trial
        self._started = time.monotonic()

    def report(self, trials: list, done: bool, *sys_info: str) -> None:
        print(self.render(trials, done=done), flush=True)

    def render(self, trials: list, *, done: bool = False) -> str:
        elapsed = time.strftime("%H:%M:%S", time.gmtime(time.monotonic() - self._started))
        rows = [_row(t) for t in trials]
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        state_text = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none yet"
        lines = [
            f"== {self._header} · {elapsed} {'done' if done else 'elapsed'} ==",
            f"ASHA rungs at epochs {', '.join(map(str, self._rungs)) or '-'}; {self._per_trial}",
            f"Trials: {state_text}" + _best_text(rows),
        ]
        lines += _table(rows, self._parameters)
        return "\n".join(line[:WIDTH] for line in lines) + "\n"


def _row(trial: Trial) -> dict[str, Any]:
    result = trial.last_result or {}
    reported = TIME_ATTR in result
    status = trial.status
    if status == "RUNNING":
        state = "training" if reported else "starting"
    elif status == "TERMINATED":
        state = "finished"
    elif status == "ERROR":
        state = "errored"
    else:
        state = status.lower()
    return {
        "trial": trial.trial_id[:8],
        "state": state,
        "config": trial.config or {},
        "epoch": result.get(TIME_ATTR),
        "obj": result.get(METRIC),
        "result": result,
    }


def _best_text(rows: list[dict[str, Any]]) -> str:
    scored = [r for r in rows if r["obj"] is not None]
    if not scored:
        return ""
    best = min(scored, key=lambda r: (-(r["epoch"] or 0), r["obj"]))
    # The log's count, whichever count the search minimises: it compares with the log.
    violations = registry.objectives()[DEFAULT_OBJECTIVE].cell(best["result"])
    return f" · best so far {best['trial']}: {violations} violations at epoch {best['epoch']}"


def _table(rows: list[dict[str, Any]], parameters: list[str]) -> list[str]:
    # The block is narrow: counts without their steps (the summary has both).
    metric_cols = [("epoch", lambda r: _value(r["epoch"]))] + [
        (m.live.heading, lambda r, m=m, fmt=m.live.fmt: m.cell(r["result"], fmt=fmt, with_steps=False))
        for m in registry.declared()
        if m.live is not None
    ]
    fixed_cols = [("trial", lambda r: r["trial"]), ("state", lambda r: r["state"])]
    columns = [(name, [get(r) for r in rows]) for name, get in fixed_cols + metric_cols]
    width = sum(max(len(name), *(len(c) for c in cells)) + 2 for name, cells in columns) if rows else 0
    shown, hidden = [], 0
    for p in parameters:
        cells = [_value(r["config"].get(p)) for r in rows]
        w = max(len(short_name(p)), *(len(c) for c in cells)) + 2 if rows else len(short_name(p)) + 2
        if width + w > WIDTH - 24:
            hidden += 1
            continue
        width += w
        shown.append((short_name(p), cells))
    ordered = columns[:2] + shown + columns[2:]
    widths = [max(len(name), *(len(c) for c in cells)) if cells else len(name) for name, cells in ordered]
    lines = ["  ".join(name.ljust(w) for (name, _), w in zip(ordered, widths))]
    for i in range(len(rows)):
        lines.append("  ".join(cells[i].ljust(w) for (_, cells), w in zip(ordered, widths)))
    if hidden:
        lines.append(f"(+{hidden} searched settings not shown: python -m collatz_ray.results lists all)")
    return lines
