"""PNG charts of an experiment for `python -m collatz_ray.results --plot`.

Four views of the search a table cannot give at a glance: every trial's held-out
violations over epochs (where ASHA cut trials off, and whether a late bloomer was cut),
the final violations against each searched parameter, all parameters at once as
parallel coordinates, and how much each parameter matters (importance.py). And one of
its best trial: V along each held-out trajectory, step by step, where its violations sit
(results/trajectories.py computes V). Matplotlib's Agg backend draws them without a
display.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from collatz_ray.results.importance import UNCERTAIN, Importances, parameter_importances  # noqa: E402
from collatz_ray.results.read import Experiment, Parameter, Trial  # noqa: E402
from collatz_ray.results.report import best_trial, fmt, ranked_trials  # noqa: E402
from collatz_ray.results.trajectories import SETS, BestTrajectories, best_trajectories  # noqa: E402

if TYPE_CHECKING:  # the trainer's module imports torch
    from collatz_ray.trainer.evaluation import SeedTrajectory

DPI = 110
#: How each way of ending is drawn at a trial's last point.
END_MARKERS = {
    "completed": ("o", "completed"),
    "stopped": ("x", "stopped by ASHA"),
    "running": (">", "still running"),
    "errored": ("X", "errored"),
}
MISSING = "n/a"
#: Trials named in the epoch chart's legend, best first; the rest are drawn in grey.
LEGEND_TRIALS = 10
#: Where a trial without the parameter (a conditional one not sampled) sits on an axis.
MISSING_POSITION = -0.12
#: Numeric axes of parallel coordinates label every value up to this many.
FEW_VALUES = 6


def write_plots(exp: Experiment) -> list[Path]:
    """Write the charts into the experiment directory; returns the files written."""
    trials = [t for t in ranked_trials(exp) if "traj_total_violations" in t.metrics]
    if not trials:
        return []
    colors = {
        t.trial_id: plt.get_cmap("tab10" if len(trials) <= 10 else "tab20")(i % 20)
        for i, t in enumerate(trials)
    }
    best = best_trial(exp)
    varied = [p for p in exp.parameters if len({fmt(t.params.get(p.name)) for t in trials}) > 1]
    written = [_save(_curves(exp, trials, colors, best), exp.path / "violations_by_epoch.png")]
    if varied:
        written.append(
            _save(_by_parameter(exp, trials, varied, colors, best), exp.path / "violations_by_parameter.png")
        )
        written.append(_save(_parallel(exp, trials, varied, best), exp.path / "parallel_coordinates.png"))
    importances = parameter_importances(exp)
    if importances.importances:  # "not enough" has no numbers to draw; the report says why
        title = f"{exp.name}: which settings matter, {importances.label}"
        written.append(
            _save(_importance_bars(importances, title), exp.path / "parameter_importance.png", title=title)
        )
    return written


def _save(fig: plt.Figure, path: Path, *, title: str | None = None) -> Path:
    # The title also goes into the PNG's text chunk, where a reader (or a test) finds it.
    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Title": title} if title else None)
    plt.close(fig)
    return path


def _steps(trials: list[Trial]) -> Any:
    return trials[0].metrics.get("traj_total_steps", "?")


def _ending_legend() -> list[Line2D]:
    return [
        Line2D([], [], color="0.3", marker=m, linestyle="none", markersize=8, label=label)
        for m, label in END_MARKERS.values()
    ]


def _marker(trial: Trial) -> str:
    # A trial pending with reports (waiting for a retry) is unfinished, like a running one.
    return END_MARKERS.get(trial.ending.kind, END_MARKERS["running"])[0]


# -- violations over epochs --------------------------------------------------------------
def _curves(exp: Experiment, trials: list[Trial], colors: dict, best: Trial | None) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for rung in exp.budget.rungs():
        ax.axvline(rung, color="0.75", linestyle=":", zorder=0)
        # At the bottom: the stopped trials' x marks sit high, at the rungs.
        ax.annotate(
            f"ASHA rung {rung}",
            (rung, 0),
            xycoords=("data", "axes fraction"),
            xytext=(3, 4),
            textcoords="offset points",
            fontsize=8,
            color="0.4",
        )
    for rank, t in enumerate(trials):
        history = t.history()
        is_best = best is not None and t.trial_id == best.trial_id
        # Past the legend's top trials, lines turn grey: a 64-trial search stays legible.
        labelled = rank < LEGEND_TRIALS
        color = colors[t.trial_id] if labelled else "0.7"
        label = f"{t.trial_id}{' (best)' if is_best else ''}: {t.ending.text}" if labelled else None
        ax.plot(
            history["epoch"],
            history["traj_total_violations"],
            color=color,
            linewidth=3 if is_best else 1.4,
            alpha=1 if is_best else 0.8,
            label=label,
            zorder=3 if is_best else 2,
        )
        marker = _marker(t)
        ax.plot(
            history["epoch"].iloc[-1],
            history["traj_total_violations"].iloc[-1],
            marker=marker,
            markersize=11 if marker == "x" else 8,
            markeredgewidth=2.5,
            color=color,
            linestyle="none",
            zorder=4,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"held-out trajectory violations (of {_steps(trials)} steps)")
    ax.set_title(f"{exp.name}: held-out violations by epoch, one line per trial")
    ax.grid(True, alpha=0.3)
    if exp.budget.epochs:
        ax.set_xlim(0, exp.budget.epochs * 1.02)
    hidden = len(trials) - LEGEND_TRIALS
    title = f"trial (best first; {hidden} more in grey)" if hidden > 0 else "trial (best first)"
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(0.91, 0.89),
        fontsize=8,
        title=title,
        title_fontsize=9,
    )
    fig.legend(
        handles=_ending_legend(),
        loc="lower left",
        bbox_to_anchor=(0.91, 0.11),
        fontsize=8,
        title="last point",
        title_fontsize=9,
    )
    fig.subplots_adjust(right=0.9)
    return fig


# -- final violations against each parameter ---------------------------------------------
def _by_parameter(
    exp: Experiment, trials: list[Trial], params: list[Parameter], colors: dict, best: Trial | None
) -> plt.Figure:
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.6 * cols, 3.4 * rows + 0.8), squeeze=False, layout="constrained"
    )
    violations = {t.trial_id: t.metrics["traj_total_violations"] for t in trials}
    for ax, param in zip(axes.flat, params):
        values = [t.params.get(param.name) for t in trials]
        if param.numeric:  # trials without it (a conditional parameter) are left out
            shown = [(t, float(v)) for t, v in zip(trials, values) if v is not None]
            _numeric_x(ax, param, [x for _, x in shown])
        else:
            shown = list(zip(trials, _strip(ax, values, list(violations.values()))))
        for t, x in shown:
            marker = _marker(t)
            ax.plot(
                x,
                violations[t.trial_id],
                marker=marker,
                color=colors[t.trial_id],
                markersize=8,
                markeredgewidth=2,
                linestyle="none",
                zorder=3,
            )
            if best is not None and t.trial_id == best.trial_id:
                ax.plot(
                    x,
                    violations[t.trial_id],
                    marker="o",
                    markersize=16,
                    markerfacecolor="none",
                    markeredgecolor="black",
                    linestyle="none",
                    zorder=4,
                )
        left_out = len(trials) - len(shown)
        ax.set_xlabel(
            param.name
            + (" (log scale)" if ax.get_xscale() == "log" else "")
            + (f" ({left_out} trials without it)" if left_out else "")
        )
        ax.set_ylabel("final violations")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(params) :]:
        ax.set_visible(False)
    handles = _ending_legend() + [
        Line2D(
            [],
            [],
            marker="o",
            markersize=12,
            markerfacecolor="none",
            markeredgecolor="black",
            linestyle="none",
            label="best",
        )
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8)
    fig.suptitle(f"{exp.name}: final held-out violations by searched parameter (of {_steps(trials)} steps)")
    return fig


def _numeric_x(ax: plt.Axes, param: Parameter, xs: list[float]) -> None:
    """A few plainly labelled ticks, on a log axis where the space samples on one."""
    if xs and _on_log_scale(param, xs):
        _log_axis(ax.xaxis)
    else:
        ax.xaxis.set_major_locator(ticker.MaxNLocator(4, integer=all(x.is_integer() for x in xs)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))


def _on_log_scale(param: Parameter, values: list[Any]) -> bool:
    """Log-scaled in the space and spanning over a decade: a linear axis would crowd
    most trials into its left end."""
    return param.log and min(values) > 0 and max(values) / min(values) > 10


def _log_axis(axis: Any) -> None:
    """Log scale with plain labels at 1, 2 and 5 per decade (matplotlib's default labels
    the minor ticks too over spans under two decades, and they overlap)."""
    axis.axes.set_xscale("log")
    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _categories(values: list[Any]) -> list[str]:
    """Category labels in a natural order: numbers by value, then the rest by name."""
    labels = {fmt(v) for v in values}

    def key(label: str) -> tuple[int, float, str]:
        try:
            return (0, float(label), label)
        except ValueError:
            return (1, 0.0, label)

    return sorted(labels, key=key)


def _strip(ax: plt.Axes, values: list[Any], violations: list[int]) -> list[float]:
    """Box per category with the trials as jittered points; returns their x positions."""
    order = _categories(values)
    position = {label: i for i, label in enumerate(order)}
    groups = [[y for v, y in zip(values, violations) if fmt(v) == label] for label in order]
    ax.boxplot(
        groups,
        positions=range(len(order)),
        widths=0.5,
        showfliers=False,
        medianprops={"color": "0.2"},
        boxprops={"color": "0.6"},
        whiskerprops={"color": "0.6"},
        capprops={"color": "0.6"},
    )
    ax.set_xticks(range(len(order)), [MISSING if lab == "-" else lab for lab in order])
    # Trials sharing a value spread symmetrically around it, the same way every run.
    counts = {label: sum(fmt(v) == label for v in values) for label in order}
    seen: dict[str, int] = {}
    xs = []
    for v in values:
        label = fmt(v)
        j = seen[label] = seen.get(label, -1) + 1
        step = min(0.12, 0.6 / counts[label])
        xs.append(position[label] + step * (j - (counts[label] - 1) / 2))
    return xs


# -- parallel coordinates ----------------------------------------------------------------
def _parallel(
    exp: Experiment, trials: list[Trial], params: list[Parameter], best: Trial | None
) -> plt.Figure:
    violations = [t.metrics["traj_total_violations"] for t in trials]
    axes_data = [_axis(p.name, [t.params.get(p.name) for t in trials], p) for p in params]
    axes_data.append(_axis("violations", violations, Parameter("violations", numeric=True)))
    # Width grows with the axes up to what a screen shows whole; beyond, labels tilt.
    fig, ax = plt.subplots(figsize=(min(16, max(8, 1.5 * len(axes_data))), 6))
    cmap = plt.get_cmap("RdYlGn_r")
    norm = plt.Normalize(min(violations), max(violations))
    for i, t in enumerate(trials):
        ys = [positions[i] for _, positions, _ in axes_data]
        is_best = best is not None and t.trial_id == best.trial_id
        ax.plot(
            range(len(axes_data)),
            ys,
            color=cmap(norm(violations[i])),
            marker="o",
            markersize=4,
            linewidth=3.2 if is_best else 1.5,
            alpha=0.95 if is_best else 0.75,
            zorder=3 if is_best else 2,
        )
    for x, (_, _, ticks) in enumerate(axes_data):
        ax.axvline(x, color="0.3", linewidth=1, zorder=1)
        for y, label in ticks:
            ax.annotate(
                label,
                (x, y),
                xytext=(4, 0),
                textcoords="offset points",
                fontsize=8,
                va="center",
                color="0.15",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7},
            )
    tilt = 30 if len(axes_data) > 8 else 0
    ax.set_xticks(
        range(len(axes_data)),
        [name for name, _, _ in axes_data],
        fontsize=9,
        rotation=tilt,
        ha="right" if tilt else "center",
    )
    ax.set_yticks([])
    ax.set_xlim(-0.3, len(axes_data) - 0.4)
    ax.set_ylim(MISSING_POSITION - 0.08, 1.08)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    bar = fig.colorbar(plt.cm.ScalarMappable(cmap=cmap, norm=norm), ax=ax, pad=0.02)
    bar.set_label("final held-out violations")
    ax.set_title(
        f"{exp.name}: searched parameters and final violations\n"
        "one line per trial, coloured by violations (thick: best)",
        fontsize=11,
    )
    return fig


Ticks = list[tuple[float, str]]


def _axis(name: str, values: list[Any], param: Parameter) -> tuple[str, list[float], Ticks]:
    """(name, each trial's height in [0, 1], tick labels) for one vertical axis; trials
    without the parameter sit below the axis, at "n/a"."""
    present = [v for v in values if v is not None]
    numeric = param.numeric and bool(present)
    place, ticks = (_numeric_scale if numeric else _category_scale)(present, param)
    if len(present) < len(values):
        ticks.append((MISSING_POSITION, MISSING))
    label = f"{name}\n(log scale)" if numeric and _on_log_scale(param, present) else name
    return label, [MISSING_POSITION if v is None else place(v) for v in values], ticks


def _category_scale(present: list[Any], param: Parameter) -> tuple[Callable[[Any], float], Ticks]:
    order = _categories(present)
    height = {label: i / (len(order) - 1) if len(order) > 1 else 0.5 for i, label in enumerate(order)}
    return (lambda v: height[fmt(v)]), [(h, label) for label, h in height.items()]


def _numeric_scale(present: list[Any], param: Parameter) -> tuple[Callable[[Any], float], Ticks]:
    lo, hi = min(present), max(present)
    scale = math.log10 if _on_log_scale(param, present) else float

    def place(v: Any) -> float:
        return 0.5 if hi == lo else (scale(v) - scale(lo)) / (scale(hi) - scale(lo))

    distinct = sorted(set(present))
    # Every value while they are few; else the ends and the middle one.
    shown = distinct if len(distinct) <= FEW_VALUES else [lo, distinct[len(distinct) // 2], hi]
    return place, [(place(v), fmt(v)) for v in shown]


# -- parameter importance -------------------------------------------------------------------
def _importance_bars(imp: Importances, title: str) -> plt.Figure:
    names = list(imp.importances)[::-1]  # the largest on top
    shares = [imp.importances[n] for n in names]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * len(names)))
    # Uncertain importances in grey: a hint, not a finding.
    bars = ax.barh(names, shares, color="0.6" if imp.status == UNCERTAIN else "tab:blue")
    ax.bar_label(bars, labels=[f"{s:.2f}" for s in shares], padding=3, fontsize=9)
    ax.set_xlim(0, max(1.0, max(shares) * 1.15))
    ax.set_xlabel(f"importance (PED-ANOVA, shares summing to 1), scored at epoch {imp.epoch}")
    ax.set_yticks(
        range(len(names)),
        [f"{n} ({imp.sampled_in[n]}/{imp.trials})" if imp.sampled_in[n] < imp.trials else n for n in names],
    )
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(title, fontsize=11)
    return fig


# -- the best trial's held-out trajectories ------------------------------------------------
#: How a step is drawn: the V line's segment coloured by the step's kind, violations on top.
GROWTH_COLOR, DECAY_COLOR, VIOLATION_COLOR = "#e08214", "#3b6fb6", "#c0142b"
#: Trajectories up to this many steps ring each violation on the V line; longer ones
#: (the large seeds: thousands of steps) tick it in a strip under the line.
RINGS_UP_TO = 300
#: The strip's height, relative to its panel's.
STRIP_HEIGHT = 0.14
TRAJECTORY_FILES = {"log": "best_trajectories_log.png", "big": "best_trajectories_big.png"}


def write_trajectory_plots(exp: Experiment) -> list[tuple[Path, str]]:
    """V along the best trial's held-out trajectories, one PNG per held-out set; returns
    each file with its count in words. A UsageError (one line) when the model cannot be
    read or torch is missing: the other charts do not depend on it."""
    best = best_trajectories(exp)
    out = []
    for name, (title, key) in SETS.items():
        bad, steps = best.violations(name)
        counts = f"{bad} of {steps} steps violate"
        reported = best.reported.get(f"{key}_violations")
        if reported is not None and reported != bad:  # another device, another rounding
            counts += f" (the trial reported {reported})"
        fig = _trajectory_figure(exp, best, name, f"{title}: {counts}")
        out.append((_save(fig, exp.path / TRAJECTORY_FILES[name]), counts))
    return out


def _trajectory_figure(exp: Experiment, best: BestTrajectories, name: str, headline: str) -> plt.Figure:
    trajectories = best.sets[name]
    # The log's seeds one per row, full width; the large ones one column per bit length,
    # so a column shares its scale of steps.
    columns = (
        [trajectories]
        if name == "log"
        else [
            [t for t in trajectories if t.seed.bit_length() == bits]
            for bits in sorted({t.seed.bit_length() for t in trajectories})
        ]
    )
    rows = max(map(len, columns))
    # Thousands of steps: a ring per violation would bury the line, so each panel gets a
    # strip under it with a tick per violation.
    strips = any(len(t.values) - 1 > RINGS_UP_TO for t in trajectories)
    fig, axes = plt.subplots(
        rows * (1 + strips),
        len(columns),
        squeeze=False,
        layout="constrained",
        height_ratios=[1, STRIP_HEIGHT] * rows if strips else None,
        figsize=(11 if len(columns) == 1 else 5.4 * len(columns), 2.1 * rows + 1.4),
    )
    for column, ax_column in zip(columns, axes.T):
        panels = ax_column[::2] if strips else ax_column
        for i, ax in enumerate(panels):
            strip = ax_column[2 * i + 1] if strips else None
            if i < len(column):
                _trajectory_panel(ax, column[i], strip)
            else:
                for hidden in (ax, strip):
                    if hidden is not None:
                        hidden.set_visible(False)
        bottom = ax_column[(2 if strips else 1) * len(column) - 1]
        bottom.set_xlabel("step i (from x_i to x_(i+1))")
    for ax in axes[::2, 0] if strips else axes[:, 0]:
        ax.set_ylabel("V(x_i)")
    growth = sum(int((t.violation & t.growth).sum()) for t in trajectories)
    decay = sum(int((t.violation & ~t.growth).sum()) for t in trajectories)
    trial = textwrap.fill(
        f"{exp.name}, best trial {best.trial.trial_id} at epoch {best.epoch}: {_config_summary(best)}",
        width=110 if len(columns) == 1 else 160,
    )
    fig.suptitle(
        f"{trial}\nV along {headline} ({growth} on growth steps, {decay} on decay steps)", fontsize=11
    )
    fig.legend(handles=_trajectory_legend(strips=strips), loc="outside lower center", ncol=3, fontsize=9)
    return fig


def _trajectory_panel(ax: plt.Axes, t: SeedTrajectory, strip: plt.Axes | None) -> None:
    """V along one trajectory, its segments coloured by step kind; its violations ringed
    on the line, or ticked in `strip` when there is one."""
    steps = len(t.values) - 1
    points = np.column_stack([np.arange(steps + 1), t.v])
    segments = np.stack([points[:-1], points[1:]], axis=1)
    colors = [GROWTH_COLOR if g else DECAY_COLOR for g in t.growth]
    # matplotlib's stubs ask for a Sequence of lines; an (n, 2, 2) array is one at run time.
    lines = LineCollection(segments, colors=colors, linewidths=0.7 if strip else 1.4)  # type: ignore[arg-type]
    ax.add_collection(lines)
    bad = np.nonzero(t.violation)[0]
    if strip is None:
        middle = (t.v[bad] + t.v[bad + 1]) / 2  # not finite where V is not: left out
        ax.plot(
            bad + 0.5,
            middle,
            linestyle="none",
            marker="o",
            markersize=5,
            markerfacecolor="none",
            markeredgecolor=VIOLATION_COLOR,
            markeredgewidth=1.3,
            zorder=3,
        )
    else:
        # Growth steps' violations in the upper row, decay steps' in the lower.
        growth = t.growth[bad]
        strip.vlines(bad[growth] + 0.5, 0.55, 1, color=VIOLATION_COLOR, linewidth=0.6)
        strip.vlines(bad[~growth] + 0.5, 0, 0.45, color=VIOLATION_COLOR, linewidth=0.6)
        strip.set_ylim(0, 1)
        strip.set_yticks([0.775, 0.225], ["growth", "decay"], fontsize=7)
        strip.tick_params(axis="y", length=0)
        strip.set_xlim(0, max(steps, 1))
        ax.tick_params(labelbottom=False)
    ax.set_xlim(0, max(steps, 1))  # a seed of 1 has no step
    finite = t.v[np.isfinite(t.v)]
    if finite.size:
        pad = 0.05 * (float(finite.max() - finite.min()) or 1.0)
        ax.set_ylim(float(finite.min()) - pad, float(finite.max()) + pad)
    ax.grid(True, alpha=0.3)
    on_growth = int((t.violation & t.growth).sum())
    ax.set_title(
        f"seed {_seed_text(t.seed)}: {len(bad)} of {steps} steps violate "
        f"({on_growth} growth, {len(bad) - on_growth} decay)",
        fontsize=9,
    )


def _seed_text(seed: int) -> str:
    """A seed as it fits a panel's title: a large one by its ends and bit length."""
    text = str(seed)
    return text if len(text) <= 12 else f"{text[:4]}…{text[-4:]} ({seed.bit_length()} bits)"


def _config_summary(best: BestTrajectories) -> str:
    c = best.config
    shape = ["lookahead " + str(c.lookahead), "linear" if c.linear else "layers " + fmt(c.layers)]
    searched = [f"{k}={fmt(v)}" for k, v in best.trial.params.items() if k not in ("lookahead", "layers")]
    return ", ".join(shape + searched)


def _trajectory_legend(*, strips: bool) -> list[Line2D]:
    violation = (
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            markerfacecolor="none",
            markersize=7,
            markeredgecolor=VIOLATION_COLOR,
            markeredgewidth=1.5,
            label="violation: V(x_(i+1)) ≥ V(x_i)",
        )
        if not strips
        else Line2D(
            [],
            [],
            linestyle="none",
            marker="|",
            markersize=10,
            color=VIOLATION_COLOR,
            label="violation: V(x_(i+1)) ≥ V(x_i) (a tick under its step, by the step's kind)",
        )
    )
    return [
        Line2D([], [], color=GROWTH_COLOR, linewidth=2, label="growth step: x_(i+1) > x_i (k = 1)"),
        Line2D([], [], color=DECAY_COLOR, linewidth=2, label="decay step: x_(i+1) < x_i (k ≥ 2)"),
        violation,
    ]
