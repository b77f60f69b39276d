"""How the trainer's metrics read as text: the log's columns, the per-seed report, and
JSON that every parser reads; and what every command's text for a person keeps to:
lines of at most TEXT_WIDTH columns, settings written as words and numbers.

Kept free of torch, so the search command and the results reader can print them
without loading the trainer.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Sequence
from typing import Any

from collatz_ray.trainer import metrics as registry

#: The published experiment log's columns, in its layout, so that training output reads
#: like the log: a fixed layout that new metrics leave alone (their views are the
#: summaries and the status block that trainer/metrics.py feeds).
LOG_COLUMNS = ("Epoch", "Loss", "Pass%", "Wtd%", "Growth%", "GrWtd%", "Traj Viol")


#: The widest line a command prints for a person: longer ones continue under their text.
TEXT_WIDTH = 120
#: "  time:       ...": a plan line's label, whose text a continuation starts under.
_LABEL = re.compile(r"^\s*[\w ]+:\s+")


def fitted(line: str, *, indent: str | None = None, width: int = TEXT_WIDTH) -> list[str]:
    """`line` within `width` columns, broken at spaces. A continuation starts with
    `indent`; by default under the text after the line's label ("  time:       ..."),
    else four spaces in. A path, which has no space to break at, keeps its length."""
    label = _LABEL.match(line) if indent is None else None
    if len(line) <= width or " " not in line[label.end() if label else 0 :].strip():
        return [line]
    if indent is None:
        indent = " " * (label.end() if label else 4)
    return textwrap.wrap(
        line,
        width=width,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def fitted_text(text: str) -> str:
    """Every line of `text` fitted (lines that already fit are left as they are)."""
    return "\n".join(piece for line in text.split("\n") for piece in fitted(line))


def setting_text(value: Any, *, digits: int | None = None) -> str:
    """A setting as a person reads it (and as a YAML file or a KEY=VALUE flag takes it):
    lists as 16,16, booleans as true/false, nothing as -, floats to `digits` significant
    digits when given; never a Python repr."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(setting_text(v, digits=digits) for v in value)
    if isinstance(value, float) and digits is not None:
        return f"{value:.{digits}g}"
    return str(value)


def strict_json(value: Any, **dumps_options: Any) -> str:
    """json.dumps, with NaN and infinities as null: json.dumps would write them as bare
    NaN and Infinity, which are not JSON and which most parsers refuse."""
    return json.dumps(_finite(value), allow_nan=False, **dumps_options)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def short_decimal(text: str, *, width: int = 24) -> str:
    """A long decimal shortened for a table cell (the JSON forms keep every digit)."""
    return text if len(text) <= width else f"{text[:8]}...({len(text)} digits)"


def format_log_header() -> str:
    return "{:>8} | {:>9} | {:>6} | {:>6} | {:>7} | {:>6} | {:>9}".format(*LOG_COLUMNS)


def format_log_line(m: dict[str, Any]) -> str:
    return "{:>8} | {:>9.5f} | {:>6.2f} | {:>6.2f} | {:>7.2f} | {:>6.2f} | {:>4}/{:<4}".format(
        m["epoch"],
        m["loss"],
        m["pass_rate"],
        m["weighted_pass_rate"],
        m["growth_pass_rate"],
        m["growth_weighted_pass_rate"],
        m["traj_total_violations"],
        m["traj_total_steps"],
    )


def format_report(metrics: dict[str, Any], seeds: Sequence[int]) -> str:
    """Violations per held-out seed, then the population's pass rates and margins."""
    lines = [f"{'seed':>8} {'violations':>10} {'steps':>6} {'worst margin':>13}"]
    for s in seeds:
        violations = metrics[f"traj_{s}_violations"]
        worst = "none" if not violations else _number(metrics[f"traj_{s}_worst"])
        lines.append(f"{s:>8} {violations:>10} {metrics[f'traj_{s}_length']:>6} {worst:>13}")
    lines.append(
        f"{'total':>8} {metrics['traj_total_violations']:>10} {metrics['traj_total_steps']:>6}"
        f"   ({metrics['traj_growth_violations']} on growth steps, "
        f"{metrics['traj_decay_violations']} on decay steps)"
    )
    lines += heldout_lines(metrics)
    lines.append("")
    lines.append(
        f"pass {metrics['pass_rate']:.2f}%  weighted {metrics['weighted_pass_rate']:.2f}%  "
        f"growth {metrics['growth_pass_rate']:.2f}%  growth weighted "
        f"{metrics['growth_weighted_pass_rate']:.2f}%  (n={metrics['n_total']}, "
        f"growth {metrics['n_growth']})"
    )
    lines.append(
        f"margin mean {_number(metrics['margin_mean'])}  median {_number(metrics['margin_median'])}  "
        f"min {_number(metrics['margin_min'])}  5th pct {_number(metrics['margin_5pct'])}  "
        f"growth mean {_number(metrics['growth_margin_mean'])}  "
        f"growth min {_number(metrics['growth_margin_min'])}"
    )
    nonfinite = metrics.get("traj_nonfinite", 0), metrics.get("n_nonfinite", 0)
    if any(nonfinite):
        lines.append(
            f"V is nan or inf at {nonfinite[0]} held-out trajectory values and "
            f"{nonfinite[1]} evaluation margins: counted as violations, statistics n/a"
        )
    return "\n".join(lines)


def _number(value: float | None) -> str:
    """A margin to five places; n/a where it is not a finite number."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.5f}"


def heldout_lines(metrics: dict[str, Any]) -> list[str]:
    """The unseen-step and large-number counts (docs/method.md §8), when measured."""
    if "traj_unseen_steps" not in metrics:
        return []  # metrics from before they existed
    per_bits = registry.METRICS["traj_big_{bits}_violations"]
    big = ", ".join(f"{b} bits {per_bits.member(b).cell(metrics)}" for b in sorted(per_bits.members(metrics)))
    return [
        f"{'unseen':>8} {metrics['traj_unseen_violations']:>10} {metrics['traj_unseen_steps']:>6}"
        "   (steps from a value on no training walk)",
        f"large numbers: {metrics['traj_big_violations']}/{metrics['traj_big_steps']} ({big})",
    ]
