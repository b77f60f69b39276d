"""The summary of an experiment as a small document (sections of paragraphs and
tables), rendered as aligned plain text for the terminal or as markdown for summary.md.

Building the content once and rendering it twice keeps the terminal and summary.md
saying the same thing; the markdown follows the published log (markdown tables).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
import statistics
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from collatz_ray.errors import UsageError, printable
from collatz_ray.results import replicates
from collatz_ray.results.importance import OK, Importances, parameter_importances
from collatz_ray.results.read import Experiment, Parameter, Trial, is_number
from collatz_ray.search.objective import objective_words, ranked
from collatz_ray.trainer import metrics as registry
from collatz_ray.trainer.bank import SOURCES, Bank, Entry, distinct
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.text import (
    LOG_COLUMNS,
    TEXT_WIDTH,
    fitted,
    format_log_header,
    format_log_line,
    setting_text,
    short_decimal,
)

#: The published runs (docs/method.md) (violations of the 429 held-out steps, percents).
PUBLISHED = (
    (2, "mining every 10k, ramp 100k", 87, 95.43, 98.02),
    (3, "ramp 50k", 80, 95.68, 98.31),
    (4, "+ T4 constraint", 73, 95.68, 98.22),
    (5, "no mining", 64, 97.22, 99.71),
    (6, "lookahead 20", 58, 97.91, 99.75),
    (7, "lookahead 100", 14, 99.68, 99.95),
)
PUBLISHED_STEPS = 429
PUBLISHED_EPOCHS = 100_000
#: The canonical evaluation set's size (docs/method.md): pass rates on another set don't compare.
CANONICAL_ROWS = 50_000
#: Counterexamples of the bank the summary lists, worst margin first.
BANK_SHOWN = 10
#: Quantile bins per numeric parameter in the dependence view.
NUMERIC_BINS = 4
#: The per-seed violation counts, a family of the metric registry.
_PER_SEED = registry.METRICS["traj_{seed}_violations"]


# -- the document ----------------------------------------------------------------------
@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    #: The terminal form when a formatter of the trainer's own log made the lines.
    fixed: list[str] | None = None
    #: The leading columns that name a row (a trial, a rank): repeated in each part when
    #: the table is too wide for the terminal and its other columns go in parts.
    key_columns: int = 1


@dataclass
class Section:
    title: str
    blocks: list[str | Table] = field(default_factory=list)


@dataclass
class Document:
    title: str
    sections: list[Section]


def render_text(doc: Document) -> str:
    doc = _printable(doc)
    out = [doc.title, "=" * len(doc.title)]
    for section in doc.sections:
        out += ["", section.title, "-" * len(section.title)]
        for i, block in enumerate(section.blocks):
            out += [""] * (i > 0) + (_text_table(block) if isinstance(block, Table) else _paragraph(block))
    return "\n".join(out) + "\n"


def render_markdown(doc: Document) -> str:
    doc = _printable(doc)
    out = [f"# {doc.title}"]
    for section in doc.sections:
        out += ["", f"## {section.title}"]
        for block in section.blocks:
            # A table's rows stay one line each, as markdown needs them; prose wraps
            # (markdown joins the lines again).
            out += [""] + (_markdown_table(block) if isinstance(block, Table) else _paragraph(block))
    return "\n".join(out) + "\n"


def _printable(doc: Document) -> Document:
    """The document with control characters escaped: trial ids, settings, error reasons
    and bank fields come from files, and a terminal would act on them. A table cell
    (one row of a table) keeps no line break either."""

    def block(b: str | Table) -> str | Table:
        if not isinstance(b, Table):
            return printable(b, keep_newlines=True)
        return dataclasses.replace(
            b,
            headers=[printable(h) for h in b.headers],
            rows=[[printable(c) for c in row] for row in b.rows],
            fixed=None if b.fixed is None else [printable(line) for line in b.fixed],
        )

    return Document(
        printable(doc.title),
        [Section(printable(s.title), [block(b) for b in s.blocks]) for s in doc.sections],
    )


#: A list item's mark ("- ", "1. "): its continuation lines start under the item's text.
_LIST_MARK = re.compile(r"\s*(?:[-*]|\d+\.)\s+")


def _paragraph(block: str) -> list[str]:
    """A block of prose within TEXT_WIDTH columns: each line wrapped, a list item's
    continuation under its text."""
    out = []
    for line in block.split("\n"):
        mark = _LIST_MARK.match(line)
        out += fitted(line, indent=" " * (mark.end() if mark else 0))
    return out


def _is_number(cell: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d.,/e+-]+%?", cell.strip()))


def _right_aligned(table: Table) -> list[bool]:
    return [
        all(_is_number(row[i]) for row in table.rows if row[i] not in ("", "-"))
        and any(row[i] not in ("", "-") for row in table.rows)
        for i in range(len(table.headers))
    ]


#: Columns are two spaces apart.
_GAP = 2
#: The narrowest a column of text is wrapped to, before the table's columns go in parts.
_NARROWEST_TEXT = 16


def _text_table(table: Table) -> list[str]:
    """The table as aligned text within TEXT_WIDTH columns: a long text cell (an error, a
    configuration) wraps within its column; a table with more columns than fit goes in
    parts, each with the key columns that name its rows."""
    if table.fixed is not None:
        return table.fixed
    right = _right_aligned(table)
    natural = [max(len(c) for c in col) for col in zip(table.headers, *table.rows)]
    narrowest = [w if r else min(w, _NARROWEST_TEXT) for w, r in zip(natural, right)]
    out: list[str] = []
    for i, part in enumerate(_column_parts(narrowest, keys=table.key_columns)):
        out += [""] * (i > 0) + _text_part(table, part, [natural[c] for c in part], [right[c] for c in part])
    return out


def _column_parts(narrowest: list[int], *, keys: int) -> list[list[int]]:
    """The columns in parts that fit TEXT_WIDTH at their narrowest, the key columns
    leading each part; one part when all fit."""
    key = list(range(min(keys, len(narrowest))))
    used = sum(narrowest[c] + _GAP for c in key)
    parts, part, width = [], list(key), used
    for column in range(len(key), len(narrowest)):
        if part != key and width + narrowest[column] > TEXT_WIDTH:
            parts.append(part)
            part, width = list(key), used
        part.append(column)
        width += narrowest[column] + _GAP
    return [*parts, part]


def _text_part(table: Table, columns: list[int], widths: list[int], right: list[bool]) -> list[str]:
    # Narrow the widest text columns until the part fits (or each is at its narrowest).
    while sum(widths) + _GAP * (len(widths) - 1) > TEXT_WIDTH:
        text = [i for i, r in enumerate(right) if not r and widths[i] > _NARROWEST_TEXT]
        if not text:
            break
        widest = max(text, key=lambda i: widths[i])
        excess = sum(widths) + _GAP * (len(widths) - 1) - TEXT_WIDTH
        widths[widest] = max(_NARROWEST_TEXT, widths[widest] - excess)

    def lines(cells: Sequence[str]) -> list[str]:
        wrapped = [_cell_lines(cells[c], w) for c, w in zip(columns, widths)]
        height = max(map(len, wrapped))
        return [
            (" " * _GAP)
            .join(
                _aligned(piece[n] if n < len(piece) else "", w, r)
                for piece, w, r in zip(wrapped, widths, right)
            )
            .rstrip()
            for n in range(height)
        ]

    rule = (" " * _GAP).join("-" * w for w in widths)
    return [*lines(table.headers), rule] + [line for row in table.rows for line in lines(row)]


def _aligned(text: str, width: int, right: bool) -> str:
    return text.rjust(width) if right else text.ljust(width)


def _cell_lines(cell: str, width: int) -> list[str]:
    """A cell's text in lines of `width`, broken at spaces (a word longer than the
    column, a path, keeps its length)."""
    if len(cell) <= width:
        return [cell]
    return textwrap.wrap(cell, width=width, break_long_words=False, break_on_hyphens=False) or [""]


def _markdown_table(table: Table) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = "|" + "|".join("---:" if r else "---" for r in _right_aligned(table)) + "|"
    return [line(table.headers), rule] + [line(r) for r in table.rows]


# -- formatting values -----------------------------------------------------------------
def fmt(value: Any) -> str:
    """A setting or metric as a short cell: lists as 16,16, floats to 4 digits."""
    return setting_text(value, digits=4)


def _pct(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) and math.isfinite(value) else "-"


#: The log's held-out violation count, which the overview and the comparison with the
#: published runs show whatever the search minimised.
_LOG_COUNT = registry.METRICS["traj_total_violations"]


def _violations(metrics: dict[str, Any]) -> str:
    """violations/steps of the log's held-out steps, e.g. 58/429."""
    return _LOG_COUNT.cell(metrics)


def params_text(trial: Trial) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in trial.params.items())


# -- ranking and selection ---------------------------------------------------------------
def ranked_trials(exp: Experiment) -> list[Trial]:
    """The experiment's trials best first, by collatz_ray.search.objective's rule."""
    wrapped = [{"metrics": t.metrics, "trial": t} for t in exp.trials]
    return [w["trial"] for w in ranked(wrapped, max_epochs=exp.budget.epochs or 0)]


def best_trial(exp: Experiment) -> Trial | None:
    first = next(iter(ranked_trials(exp)), None)
    return first if first is not None and "objective" in first.metrics else None


def ending_counts(exp: Experiment) -> dict[str, int]:
    """How many trials ended each way, most common first."""
    return dict(collections.Counter(t.ending.kind for t in exp.trials).most_common())


def config_diff(trial: Trial) -> tuple[dict[str, Any], str | None]:
    """(settings that differ from the trainer's defaults, or a reason there are none)."""
    if trial.config is None:
        return {}, f"{trial.trial_id}: no train_config.json"
    try:
        return TrainConfig.from_dict(trial.config, source="train_config.json").diff(), None
    except UsageError as err:  # written by an older or newer trainer
        return {}, str(err)


# -- the sections ------------------------------------------------------------------------
def experiment_document(exp: Experiment, others: Sequence[Experiment], *, top: int) -> Document:
    """The whole summary of `exp`; `others` are the experiments it is compared with."""
    best = best_trial(exp)
    sections = [_overview(exp, best)]
    sections += [s for s in [replication_section(exp)] if s is not None]
    if best is not None:
        sections += [_best_config(best), _trajectories(best), _population(best), _learning_curve(best)]
    sections += [_trials_table(exp, top)]
    sections += [s for s in (_errors(exp), _dependence(exp)) if s.blocks]
    if best is not None:
        sections.append(_importance(exp, parameter_importances(exp)))
    sections += [s for s in (_bank(exp),) if s.blocks]
    sections.append(_comparison([exp, *others]))
    if exp.notes:
        sections.append(Section("Notes from reading", [f"- {n}" for n in exp.notes]))
    return Document(f"Experiment {exp.name}", sections)


def _overview(exp: Experiment, best: Trial | None) -> Section:
    b = exp.budget
    lines = [f"- Path: {exp.path}"]
    space = exp.settings.get("space_name")
    if space:
        lines.append(f"- Space: {space} ({exp.settings.get('space_path')})")
    lines.append(
        f"- Budget: {fmt(b.epochs)} epochs, evaluation every {fmt(b.eval_interval)}, "
        f"ASHA grace {fmt(b.grace_epochs)} and factor {fmt(b.reduction_factor)} "
        f"(rungs at {', '.join(map(str, b.rungs())) or 'none'})"
    )
    lines.append(
        f"- Trials: {len(exp.trials)} ("
        + ", ".join(f"{n} {kind}" for kind, n in ending_counts(exp).items())
        + ")"
    )
    if exp.state_time is not None:
        # The age tells a live search from one whose driver died: Tune saves every ~10 s.
        minutes = (time.time() - exp.state_time) / 60
        lines.append(
            "- Tune's last saved state: "
            + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(exp.state_time))
            + f" ({minutes:.0f} min ago)"
        )
    if best is None:
        lines.append("- No trial has reported a result yet.")
    else:
        lines.append(
            f"- Best trial: {best.trial_id}, {_violations(best.metrics)} held-out "
            f"violations at epoch {best.epoch}, {best.ending.text}"
        )
    return Section("Overview", ["\n".join(lines)])


def replication_section(exp: Experiment) -> Section | None:
    """A replication's configurations over their seeds and its verdict; None for a search."""
    rep = replicates.replication(exp)
    if rep is None:
        return None
    return Section(
        "Seed replicates",
        [
            replicates.description(rep, exp),
            replicates.configuration_lines(rep),
            Table(replicates.HEADERS, replicates.table_rows(rep)),
            rep.verdict,
        ],
    )


def _best_config(best: Trial) -> Section:
    diff, problem = config_diff(best)
    defaults = TrainConfig().to_dict()
    blocks: list[str | Table] = [
        f"Trial {best.trial_id}: {best.ending.text}, {best.epoch} epochs reached. "
        "Settings that differ from the trainer's defaults:"
    ]
    if problem:
        blocks.append(f"(config not shown: {problem}; sampled: {params_text(best)})")
    else:
        blocks.append(
            Table(["setting", "value", "default"], [[k, fmt(v), fmt(defaults[k])] for k, v in diff.items()])
        )
    return Section(f"Best trial {best.trial_id}", blocks)


def _thirds(steps: Sequence[int] | None, length: int) -> list[int] | None:
    """Violations in the first, middle and last third of a trajectory."""
    if steps is None or length <= 0:
        return None
    counts = [0, 0, 0]
    for step in steps:
        counts[min(2, 3 * step // length)] += 1
    return counts


def _trajectories(best: Trial) -> Section:
    m = best.metrics
    rows, totals = [], [0, 0, 0]
    for seed in _PER_SEED.members(m):
        length = m.get(f"traj_{seed}_length", 0)
        thirds = _thirds(m.get(f"traj_{seed}_violation_steps"), length)
        worst = m.get(f"traj_{seed}_worst")
        violations = m[f"traj_{seed}_violations"]
        rows.append(
            [
                str(seed),
                str(violations),
                str(length),
                "none" if worst is None else f"{worst:.5f}",
                "yes" if violations == 0 else "no",
            ]
            + ([str(c) for c in thirds] if thirds else ["-"] * 3)
        )
        totals = [a + b for a, b in zip(totals, thirds or [0, 0, 0])]
    solved = sum(r[4] == "yes" for r in rows)
    rows.append(
        [
            "total",
            str(m.get("traj_total_violations", "-")),
            str(m.get("traj_total_steps", "-")),
            "",
            f"{solved}/{len(rows)}",
        ]
        + [str(c) for c in totals]
    )
    table = Table(
        ["seed", "violations", "steps", "worst margin", "solved", "1st third", "2nd third", "3rd third"], rows
    )
    blocks: list[str | Table] = [table, _where(m)]
    # Trials from before the other held-out sets were measured show the log's alone.
    if any(metric.key in m for metric in _heldout_sets(m) if not metric.required):
        blocks += [
            _heldout(m),
            "Unseen steps start at a value on no training seed's walk; "
            "the large seeds (256 to 1024 bits) lie far beyond training's 125 bits "
            "(docs/method.md §8). The log's count mixes both with trained pairs.",
        ]
    return Section(f"Held-out trajectories at epoch {best.epoch}", blocks)


def _heldout_sets(m: dict[str, Any]) -> list[registry.Metric]:
    """The violation counts of the held-out sets the registry declares, a family's
    members (per bit length) in their order."""
    sets: list[registry.Metric] = []
    for metric in registry.declared():
        if metric.heldout is None:
            continue
        if metric.family is None:
            sets.append(metric)
        else:
            sets += [metric.member(part) for part in sorted(metric.members(m))]
    return sets


def _heldout(m: dict[str, Any]) -> Table:
    """The log's count beside the unseen steps and the large-number trajectories."""
    rows = []
    for metric in _heldout_sets(m):
        bad = m.get(metric.key)
        steps = None if metric.steps is None else m.get(metric.steps)
        share = f"{100 * bad / steps:.1f}%" if isinstance(bad, int) and steps else "-"
        rows.append([metric.heldout or "", fmt(bad), fmt(steps), share])
    return Table(["held-out set", "violations", "steps", "violating"], rows)


def _where(m: dict[str, Any]) -> str:
    def share(kind: str) -> str:
        bad, steps = m.get(f"traj_{kind}_violations"), m.get(f"traj_{kind}_steps")
        if bad is None or not steps:
            return "-"
        return f"{bad} of {steps} ({100 * bad / steps:.1f}%)"

    return (
        f"Where the violations sit: growth steps (T(x) > x) {share('growth')}, "
        f"decay steps {share('decay')}. A solved seed has no violation."
    )


def _population(best: Trial) -> Section:
    m = best.metrics
    rates = Table(
        ["pass %", "weighted %", "growth %", "growth weighted %", "rows", "growth rows"],
        [
            [
                _pct(m.get("pass_rate")),
                _pct(m.get("weighted_pass_rate")),
                _pct(m.get("growth_pass_rate")),
                _pct(m.get("growth_weighted_pass_rate")),
                fmt(m.get("n_total")),
                fmt(m.get("n_growth")),
            ]
        ],
    )
    keys = (
        "margin_mean",
        "margin_median",
        "margin_min",
        "margin_5pct",
        "growth_margin_mean",
        "growth_margin_min",
    )
    margins = Table(
        ["margin mean", "median", "min", "5th pct", "growth mean", "growth min"],
        [[_margin(m.get(k)) for k in keys]],
    )
    return Section("Population metrics (evaluation set)", [rates, margins])


def _margin(value: Any) -> str:
    return f"{value:.5f}" if isinstance(value, (int, float)) else "-"


def _learning_curve(best: Trial) -> Section:
    lines = [format_log_line(r) for r in best.reports]
    rows = [[c.strip() for c in line.split("|")] for line in lines]
    table = Table(list(LOG_COLUMNS), rows, fixed=[format_log_header(), *lines])
    return Section(f"Learning curve of {best.trial_id}", [table])


def _trials_table(exp: Experiment, top: int) -> Section:
    names = [p.name for p in exp.parameters]
    trials = ranked_trials(exp)
    columns = [
        (m, m.table)
        for m in registry.declared()
        if m.table is not None and (not m.table.when_reported or any(m.key in t.metrics for t in trials))
    ]
    rows = [
        [str(i), t.trial_id, _ending_cell(t), fmt(t.epoch)]
        + [fmt(t.params.get(n)) for n in names]
        + [m.cell(t.metrics, fmt=column.fmt) for m, column in columns]
        for i, t in enumerate(trials[:top], 1)
    ]
    table = Table(
        ["#", "trial", "ending", "epoch", *names, *(column.heading for _, column in columns)],
        rows,
        key_columns=2,
    )
    shown = f"top {top} of {len(trials)}" if len(trials) > top else f"all {len(trials)}"
    kind = exp.settings.get("objective", "log")
    return Section(
        f"Trials, best first ({shown})",
        [
            table,
            "Ranking: trials that reached the full budget first, then by "
            f"objective ({objective_words(kind)} plus a margin tie-break).",
        ],
    )


def _ending_cell(trial: Trial) -> str:
    """How the trial ended, without its error: the errors' own section shows that whole."""
    return trial.ending.text.removesuffix(f": {trial.error}") if trial.error else trial.ending.text


def _errors(exp: Experiment) -> Section:
    """Trials that failed, and finished trials that were restarted after a failure."""
    rows = [
        [
            t.trial_id,
            t.status.lower(),
            fmt(t.epoch),
            t.error if t.error is not None else f"restarted after: {t.recovered_from}",
        ]
        for t in exp.trials
        if t.error is not None or t.recovered_from is not None
    ]
    table = Table(["trial", "status", "epoch", "error"], rows)
    return Section("Trials with errors", [table] if rows else [])


# -- the counterexample bank -----------------------------------------------------------------
def bank_summary(bank: Bank) -> dict[str, Any]:
    """What the summary says of a bank (its JSON form too): records, distinct numbers,
    the distinct numbers each source found, and the worst BANK_SHOWN."""
    entries = distinct(bank.records)
    return {
        "file": str(bank.file),
        "records": len(bank.records),
        "distinct": len(entries),
        "by_source": {source: sum(source in e.sources for e in entries) for source in SOURCES},
        "worst": [_entry_record(e) for e in entries[:BANK_SHOWN]],
    }


def _entry_record(entry: Entry) -> dict[str, Any]:
    w = entry.worst
    return {
        "n": str(w.n),
        "bits": w.n.bit_length(),
        "margin": w.margin,
        "source": w.source,
        "trial": w.trial,
        "epoch": w.epoch,
        "sha256": w.sha256,
        "times": entry.times,
        "sources": list(entry.sources),
    }


def _bank(exp: Experiment) -> Section:
    if exp.bank is None:
        return Section("Counterexample bank")
    summary = bank_summary(exp.bank)
    found = ", ".join(f"{source} {count}" for source, count in summary["by_source"].items())
    blocks: list[str | Table] = [
        f"{summary['file']}: {summary['records']} records of {summary['distinct']} distinct odd n with "
        f"V(T n) >= V(n) (distinct numbers found by {found})."
    ]
    if summary["worst"]:
        rows = [
            [
                short_decimal(e["n"]),
                str(e["bits"]),
                "not finite" if e["margin"] is None else f"{e['margin']:.5f}",
                e["source"],
                fmt(e["trial"]),
                fmt(e["epoch"]),
                fmt(e["sha256"] and e["sha256"][:12]),
                str(e["times"]),
            ]
            for e in summary["worst"]
        ]
        blocks += [
            Table(["n", "bits", "margin", "source", "trial", "epoch", "checkpoint", "times"], rows),
            f"The worst {len(rows)} by margin V(n) - V(T n), each with the record of its worst "
            "margin and how many distinct sightings recorded it. Later searches train on the "
            f"bank with `fixed: {{hard_seed_bank: {exp.path}}}` (docs/spaces.md).",
        ]
    return Section("Counterexample bank", blocks)


# -- how the metric depends on each searched parameter --------------------------------------
def _dependence(exp: Experiment) -> Section:
    reported = [t for t in exp.trials if "traj_total_violations" in t.metrics]
    violations = [t.metrics["traj_total_violations"] for t in reported]
    blocks: list[str | Table] = []
    for param in exp.parameters:
        values = [t.params.get(param.name) for t in reported]
        if len({fmt(v) for v in values}) < 2:
            continue  # one value (or a constant): nothing to compare
        blocks.append(_dependence_table(param, values, violations))
    if blocks:
        blocks.insert(
            0,
            "Final held-out violations per value (ASHA-stopped trials count with the fewer epochs they ran).",
        )
    return Section("How violations depend on each searched parameter", blocks)


def _dependence_table(param: Parameter, values: list[Any], violations: list[int]) -> Table:
    frame = pd.DataFrame({"value": values, "violations": violations})
    present = frame["value"].dropna()
    # Many distinct numbers (a continuous range) read better as a few quantile bins.
    binned = param.numeric and present.nunique() > NUMERIC_BINS
    labels = _bin_labels(present.astype(float)) if binned else present.map(fmt)
    frame["group"] = labels.reindex(frame.index).fillna("(not sampled)")
    # Numbers (a range, or choices like lookahead 10/20/100) in their order, to show a
    # trend; other categories best first.
    by_value = param.numeric or all(map(is_number, present))
    keyed = []
    for label, part in frame.groupby("group", sort=False):
        v, sampled = part["violations"], part["value"].dropna()
        if by_value:  # "(not sampled)" last
            key = (sampled.empty, float(sampled.min()) if not sampled.empty else 0.0)
        else:
            key = (int(v.min()), float(statistics.median(v)))
        keyed.append((key, [label, str(len(v)), str(int(v.min())), fmt(float(statistics.median(v)))]))
    rows = [row for _, row in sorted(keyed, key=lambda pair: pair[0])]
    return Table([f"{param.name} (range)" if binned else param.name, "trials", "best", "median"], rows)


def _bin_labels(numbers: pd.Series) -> pd.Series:
    """Each number's quantile bin, labelled by the lowest and highest value in it."""
    bins = pd.qcut(numbers, q=NUMERIC_BINS, duplicates="drop")
    labels = pd.Series(index=numbers.index, dtype=object)
    for _, members in numbers.groupby(bins, observed=True):
        labels[members.index] = f"{fmt(members.min())} .. {fmt(members.max())}"
    return labels


# -- which parameters matter ------------------------------------------------------------------
def _importance(exp: Experiment, imp: Importances) -> Section:
    blocks: list[str | Table] = []
    if imp.status != OK:
        blocks.append(f"{imp.label[0].upper()}{imp.label[1:]}: {imp.reason}.")
    if imp.importances:
        blocks.append(
            Table(
                ["parameter", "importance", "sampled in"],
                [
                    [name, f"{share:.2f}", f"{imp.sampled_in[name]}/{imp.trials}"]
                    for name, share in imp.importances.items()
                ],
            )
        )
        kind = exp.settings.get("objective", "log")
        blocks.append(
            f"Each of the {imp.trials} trials is scored by its objective "
            f"({objective_words(kind)}) {imp.scored_at}: trials ASHA stopped earlier "
            "would otherwise be judged on fewer epochs. PED-ANOVA (Optuna) compares where the "
            f"best {imp.best_trials} trials sampled each parameter with where all of them did; "
            "the importances are shares that sum to 1. A conditional parameter counts within "
            f"the trials that sampled it. Parameter ranges: {imp.distributions}."
        )
    blocks += [f"Not assessed: {name} ({why})." for name, why in imp.not_assessed.items()]
    blocks += [f"Left out: {line}." for line in imp.skipped]
    return Section("Which settings matter (parameter importance)", blocks)


# -- comparisons -----------------------------------------------------------------------------
def _comparison(exps: Sequence[Experiment]) -> Section:
    rows = [
        [f"run {run}", change, f"{v}/{PUBLISHED_STEPS}", f"{p:.2f}", f"{g:.2f}"]
        for run, change, v, p, g in PUBLISHED
    ]
    notes = [
        f"Published runs: {PUBLISHED_EPOCHS} epochs each, the log's 9-layer stack, "
        f"curriculum from 0 seeds, the canonical {CANONICAL_ROWS}-row evaluation set."
    ]
    for i, exp in enumerate(exps):
        best = best_trial(exp)
        label = exp.name + (" (this)" if i == 0 and len(exps) > 1 else "")
        if best is None:
            rows.append([label, "no result yet", "-", "-", "-"])
            continue
        m = best.metrics
        rows.append(
            [
                label,
                f"best {best.trial_id}: {params_text(best)} ({best.epoch} epochs)",
                _violations(m),
                _pct(m.get("pass_rate")),
                _pct(m.get("growth_weighted_pass_rate")),
            ]
        )
        if m.get("n_total") not in (None, CANONICAL_ROWS):
            notes.append(
                f"{exp.name}'s pass rates come from a {m['n_total']}-row evaluation set, "
                f"not the canonical {CANONICAL_ROWS}: they do not compare."
            )
    table = Table(["run", "change", f"violations /{PUBLISHED_STEPS}", "pass %", "growth-weighted %"], rows)
    title = "Compared with the published log" + (" and the other experiments" if len(exps) > 1 else "")
    return Section(title, [table, *notes])
