"""How the trainer's metrics read as text: the log's columns and the per-seed report.

Kept free of torch, so the search command and the results reader can print them
without loading the trainer.
"""

from __future__ import annotations

from typing import Any, Sequence

LOG_COLUMNS = ("Epoch", "Loss", "Pass%", "Wtd%", "Growth%", "GrWtd%", "Traj Viol")


def format_log_header() -> str:
    return "{:>8} | {:>9} | {:>6} | {:>6} | {:>7} | {:>6} | {:>9}".format(*LOG_COLUMNS)


def format_log_line(m: dict[str, Any]) -> str:
    return "{:>8} | {:>9.5f} | {:>6.2f} | {:>6.2f} | {:>7.2f} | {:>6.2f} | {:>4}/{:<4}".format(
        m["epoch"], m["loss"], m["pass_rate"], m["weighted_pass_rate"], m["growth_pass_rate"],
        m["growth_weighted_pass_rate"], m["traj_total_violations"], m["traj_total_steps"])


def format_report(metrics: dict[str, Any], seeds: Sequence[int]) -> str:
    """Violations per held-out seed, then the population's pass rates and margins."""
    lines = [f"{'seed':>8} {'violations':>10} {'steps':>6} {'worst margin':>13}"]
    for s in seeds:
        worst = metrics[f"traj_{s}_worst"]
        lines.append(f"{s:>8} {metrics[f'traj_{s}_violations']:>10} {metrics[f'traj_{s}_length']:>6} "
                     f"{'none' if worst is None else f'{worst:.5f}':>13}")
    lines.append(f"{'total':>8} {metrics['traj_total_violations']:>10} {metrics['traj_total_steps']:>6}"
                 f"   ({metrics['traj_growth_violations']} on growth steps, "
                 f"{metrics['traj_decay_violations']} on decay steps)")
    lines += heldout_lines(metrics)
    lines.append("")
    lines.append(f"pass {metrics['pass_rate']:.2f}%  weighted {metrics['weighted_pass_rate']:.2f}%  "
                 f"growth {metrics['growth_pass_rate']:.2f}%  growth weighted "
                 f"{metrics['growth_weighted_pass_rate']:.2f}%  (n={metrics['n_total']}, "
                 f"growth {metrics['n_growth']})")
    lines.append(f"margin mean {metrics['margin_mean']:.5f}  median {metrics['margin_median']:.5f}  "
                 f"min {metrics['margin_min']:.5f}  5th pct {metrics['margin_5pct']:.5f}  "
                 f"growth mean {metrics['growth_margin_mean']:.5f}  growth min {metrics['growth_margin_min']:.5f}")
    return "\n".join(lines)


def heldout_lines(metrics: dict[str, Any]) -> list[str]:
    """The unseen-step and large-number counts (docs/method.md §8), when measured."""
    if "traj_unseen_steps" not in metrics:
        return []  # metrics from before they existed
    buckets = sorted(int(k.split("_")[2]) for k in metrics
                     if k.startswith("traj_big_") and k.endswith("_steps") and k != "traj_big_steps")
    big = ", ".join(f"{b} bits {metrics[f'traj_big_{b}_violations']}/{metrics[f'traj_big_{b}_steps']}"
                    for b in buckets)
    return [f"{'unseen':>8} {metrics['traj_unseen_violations']:>10} {metrics['traj_unseen_steps']:>6}"
            "   (steps from a value on no training walk)",
            f"large numbers: {metrics['traj_big_violations']}/{metrics['traj_big_steps']} ({big})"]
