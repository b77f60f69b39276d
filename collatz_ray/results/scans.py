"""The exact scans of an experiment's trials against their held-out counts.

`python -m collatz_ray.scan_trials` scans each finished trial's final model exactly (every
odd n of a range, random samples of given bit lengths) and keeps one JSON file per trial,
EXPERIMENT/scans/<trial>.json. This module reads those files with the experiment and
answers two questions:

- Which held-out count predicts the scan? Across every scanned model, the Spearman rank
  correlation of each count (the log's 429 steps, the 158 unseen steps, the large seeds)
  with the scan's violation rate, with a bootstrap interval over the models.
- How small can V be? Each configuration's scan rate over its seeds (the completed
  trials of one configuration, seed aside), the lead of the largest model over each
  smaller one as a Welch interval (results/stats.py), the smallest model not worse
  than the largest beyond seed noise, and the Pareto front of parameters against the
  scan's rate.

JSON only: no torch, no Ray (the command loads them to scan).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collatz_ray._bounded import MAX_SCAN_BYTES, Unreadable, read_json
from collatz_ray.errors import UsageError
from collatz_ray.results.read import Experiment, Trial
from collatz_ray.results.stats import CONFIDENCE, Lead, Spread, lead, spread
from collatz_ray.search.replication import SEED_KEY, params_key

SCANS_DIR = "scans"
SCAN_FORMAT = 1
#: The held-out counts compared with the scan, as (metric key, label).
HELD_OUT = (
    ("traj_total_violations", "log's 429 steps"),
    ("traj_unseen_violations", "unseen 158 steps"),
    ("traj_big_violations", "large seeds"),
)
#: Compared with the scan too: the evaluation set is a random sample of odd n up to 128
#: bits, a scan by sampling (higher is better, so its correlation is negative).
PREDICTORS = (*HELD_OUT, ("pass_rate", "evaluation set pass %"))
BOOTSTRAP_DRAWS = 2000
#: The bootstrap's own seed: the same files give the same intervals.
BOOTSTRAP_SEED = 0


def scan_file(experiment: Path, trial_id: str) -> Path:
    return experiment / SCANS_DIR / f"{trial_id}.json"


@dataclass(frozen=True)
class ScannedTrial:
    """A trial of an experiment and its scan file's content."""

    experiment: Experiment
    trial: Trial
    scan: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.experiment.name}/{self.trial.trial_id}"

    @property
    def parameters(self) -> int:
        return self.scan["parameters"]

    @property
    def shape(self) -> str:
        """The model's size in words: linear, or its hidden widths."""
        model = self.scan["model"]
        return "linear" if not model["layers"] else "x".join(str(w) for w in model["layers"])

    @property
    def configuration(self) -> str:
        """The experiment and the trial's sampled settings without its seed: trials
        that differ by seed alone are one configuration."""
        params = {k: v for k, v in self.trial.params.items() if k != SEED_KEY}
        return f"{self.experiment.path}::{params_key(params)}"

    @property
    def has_range(self) -> bool:
        return "range" in self.scan["scans"]

    @property
    def rate(self) -> float:
        """The range scan's violation rate (of a trial that has one: has_range)."""
        part = self.scan["scans"]["range"]
        return part["violations"] / part["numbers"]

    def range_rate(self) -> float | None:
        return self.rate if self.has_range else None

    def bits_rate(self, bits: int) -> float | None:
        """The violation rate of the random sample of `bits` bits, if it was drawn."""
        part = self.scan["scans"].get("random") or {"buckets": []}
        for bucket in part["buckets"]:
            if bucket["bits"] == bits:
                return bucket["violations"] / bucket["numbers"]
        return None

    def random_bits(self) -> list[int]:
        part = self.scan["scans"].get("random") or {"buckets": []}
        return [b["bits"] for b in part["buckets"]]

    def held_out(self, key: str) -> float | None:
        value = self.trial.metrics.get(key)
        return float(value) if isinstance(value, int | float) else None

    @property
    def training_seconds(self) -> float | None:
        return self.trial.last.get("time_total_s")


def read_scan(path: Path) -> dict[str, Any]:
    """A trial's scan file, bounded (MAX_SCAN_BYTES, a regular file, JSON nesting); one
    line naming it when it is not one of this format."""
    try:
        data = read_json(path, limit=MAX_SCAN_BYTES)
    except Unreadable as err:
        raise UsageError(f"{err}; delete it and scan again") from None
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("format") != SCAN_FORMAT:
        raise UsageError(f"{path}: not a scan file of this format; delete it and scan again")
    return data


def read_scans(experiments: Sequence[Experiment]) -> list[ScannedTrial]:
    """Every trial of `experiments` with a scan file, in the experiments' order."""
    out = []
    for exp in experiments:
        for trial in exp.trials:
            path = scan_file(exp.path, trial.trial_id)
            if not path.is_file():
                continue
            out.append(ScannedTrial(exp, trial, read_scan(path)))
    return out


# -- which held-out count predicts the scan --------------------------------------------------------
def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson's of the ranks, ties averaged); None when
    either side does not vary or there are fewer than three pairs."""
    if len(xs) < 3:
        return None
    rx, ry = ranks(xs), ranks(ys)
    if len(set(rx)) < 2 or len(set(ry)) < 2:
        return None
    return statistics.correlation(rx, ry)


def bootstrap_interval(
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float] | None:
    """The percentile interval of Spearman's rho over `draws` resamples of the pairs
    (with replacement); resamples where it is undefined are left out."""
    rng = random.Random(seed)
    pairs = list(zip(xs, ys, strict=True))
    values = []
    for _ in range(draws):
        sample = [pairs[rng.randrange(len(pairs))] for _ in pairs]
        rho = spearman([x for x, _ in sample], [y for _, y in sample])
        if rho is not None:
            values.append(rho)
    if len(values) < draws // 2:
        return None
    values.sort()
    tail = (1 - confidence) / 2
    return values[int(tail * (len(values) - 1))], values[math.ceil((1 - tail) * (len(values) - 1))]


@dataclass(frozen=True)
class Correlation:
    label: str
    models: int
    rho: float | None
    interval: tuple[float, float] | None


def correlations(scanned: Sequence[ScannedTrial], *, target: str = "range") -> list[Correlation]:
    """Each predictor's rank correlation with the scan's violation rate: the range's
    (`target` "range") or a random sample's ("64" for 64 bits)."""
    out = []
    for key, label in PREDICTORS:
        xs, ys = [], []
        for s in scanned:
            x, y = s.held_out(key), _target_rate(s, target)
            if x is not None and y is not None:
                xs.append(x)
                ys.append(y)
        rho = spearman(xs, ys)
        out.append(Correlation(label, len(xs), rho, None if rho is None else bootstrap_interval(xs, ys)))
    return out


def _target_rate(s: ScannedTrial, target: str) -> float | None:
    return s.range_rate() if target == "range" else s.bits_rate(int(target))


# -- how small can V be -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Configuration:
    """One configuration's completed seeds: its scan rate over them, and the lead of the
    largest configuration over it (None for the largest itself, or below two seeds)."""

    label: str
    parameters: int
    trials: list[ScannedTrial]
    rate: Spread
    against_largest: Lead | None
    #: The configuration every other is compared with.
    largest: bool = False


def configurations(scanned: Sequence[ScannedTrial]) -> list[Configuration]:
    """The configurations with completed, range-scanned trials, smallest model first; each
    compared with the largest model's configuration (the one of most parameters with at
    least two seeds), on the range scan's violation rate."""
    groups: dict[str, list[ScannedTrial]] = {}
    for s in scanned:
        if s.trial.ending.kind == "completed" and s.has_range:
            groups.setdefault(s.configuration, []).append(s)
    if not groups:
        return []
    replicated = [g for g in groups.values() if len(g) >= 2]
    largest = max(replicated, key=lambda g: g[0].parameters) if replicated else None
    out = []
    for group in sorted(groups.values(), key=lambda g: (g[0].parameters, g[0].configuration)):
        rates = [s.rate for s in group]
        versus = None
        if largest is not None and group is not largest:
            versus = lead([s.rate for s in largest], rates)
        label, parameters = _configuration_label(group[0]), group[0].parameters
        out.append(Configuration(label, parameters, group, spread(rates), versus, largest=group is largest))
    return out


def _configuration_label(s: ScannedTrial) -> str:
    params = {k: v for k, v in s.trial.params.items() if k not in (SEED_KEY, "layers", "linear")}
    rest = ", ".join(f"{k}={_value(v)}" for k, v in sorted(params.items()))
    return s.shape + (f" ({rest})" if rest else "")


def smallest_not_worse(configs: Sequence[Configuration]) -> Configuration | None:
    """The configuration of fewest parameters whose scan rate is not above the largest's
    beyond seed noise (its Welch interval includes zero or favours it), among those with
    two seeds or more (one seed has no spread to judge); None before the largest has two."""
    for config in configs:  # smallest first
        if config.largest or (config.against_largest is not None and not _worse(config.against_largest)):
            return config
    return None


def _worse(versus: Lead) -> bool:
    """The largest leads: the smaller configuration's rate is higher beyond seed noise."""
    return versus.beyond_noise


def pareto_front(scanned: Sequence[ScannedTrial]) -> list[ScannedTrial]:
    """The models no other beats on both parameters and range-scan rate, fewest
    parameters first."""
    points = sorted((s for s in scanned if s.has_range), key=lambda s: (s.parameters, s.rate))
    front: list[ScannedTrial] = []
    for s in points:
        if not front or s.rate < front[-1].rate:
            front.append(s)
    return front


# -- the report ------------------------------------------------------------------------------------
def render_markdown(scanned: Sequence[ScannedTrial]) -> str:
    """The table of every scanned model, the rank correlations, the configurations over
    their seeds against the largest, and the Pareto front, as markdown."""
    if not scanned:
        return (
            "No scanned trials yet: run `python -m collatz_ray.scan_trials EXPERIMENT --range ...` first.\n"
        )
    lines = [_scan_description(scanned), "", *_trial_table(scanned), ""]
    lines += ["## Which held-out count predicts the scan", ""]
    lines += _correlation_table(scanned, "All scanned models")
    mlps = [s for s in scanned if s.shape != "linear"]
    if len(mlps) < len(scanned):
        lines += [""] + _correlation_table(
            mlps,
            "MLPs only (without a linear V, whose rates lie apart from every MLP's, "
            "a count must rank models of one kind)",
        )
    lines += ["", "## Each configuration over its seeds", ""]
    lines += _configuration_lines(configurations(scanned))
    lines += ["", "## Pareto front: parameters against the scan's violation rate", ""]
    lines += ["| parameters | model | trial | violation rate |", "|---:|---|---|---:|"]
    for s in pareto_front(scanned):
        lines.append(f"| {s.parameters:,} | {s.shape} | {s.name} | {_rate(s.range_rate())} |")
    return "\n".join(lines) + "\n"


def _correlation_table(scanned: Sequence[ScannedTrial], title: str) -> list[str]:
    targets = ["range"] + [str(b) for b in _all_bits(scanned)]
    lines = [
        f"{title}: Spearman's rank correlation of each held-out count (and the evaluation set's "
        "pass rate) with the scan's violation rate, with its 95% bootstrap interval "
        f"({BOOTSTRAP_DRAWS} resamples of the models).",
        "",
        "| predictor | " + " | ".join(_target_label(t) for t in targets) + " |",
        "|---|" + "---:|" * len(targets),
    ]
    columns = [correlations(scanned, target=t) for t in targets]
    for i, (_, label) in enumerate(PREDICTORS):
        lines.append(f"| {label} | " + " | ".join(_correlation_text(col[i]) for col in columns) + " |")
    return lines


def _scan_description(scanned: Sequence[ScannedTrial]) -> str:
    first = scanned[0].scan["scans"]
    parts = []
    if "range" in first:
        start, stop = first["range"]["range"]
        parts.append(f"every odd n in [{start}, {stop})")
    if "random" in first:
        drawn = ", ".join(f"{c:,} of {b} bits" for b, c in first["random"]["random"])
        parts.append(f"random odd n ({drawn}, seed {first['random']['seed']})")
    return f"{len(scanned)} scanned models; each scan: " + " and ".join(parts) + "."


def _all_bits(scanned: Sequence[ScannedTrial]) -> list[int]:
    return sorted({b for s in scanned for b in s.random_bits()})


def _target_label(target: str) -> str:
    return "scan of the range" if target == "range" else f"{target}-bit sample"


def _trial_table(scanned: Sequence[ScannedTrial]) -> list[str]:
    bits = _all_bits(scanned)
    head = (
        "| trial | model | parameters | settings | ending | epoch | "
        + " | ".join(label for _, label in HELD_OUT)
        + " | range rate | "
        + " | ".join(f"{b}-bit rate" for b in bits)
        + " | pass % | training s |"
    )
    lines = [head, "|---|---|---:|---|---|---:|" + "---:|" * (len(HELD_OUT) + 1 + len(bits) + 2)]
    for s in sorted(scanned, key=lambda s: (s.parameters, s.range_rate() or 0.0)):
        settings = ", ".join(
            f"{k}={_value(v)}" for k, v in sorted(s.trial.params.items()) if k not in ("layers", "linear")
        )
        held = " | ".join(_count(s.held_out(key)) for key, _ in HELD_OUT)
        rates = " | ".join(_rate(s.bits_rate(b)) for b in bits)
        seconds = s.training_seconds
        lines.append(
            f"| {s.name} | {s.shape} | {s.parameters:,} | {settings} | {s.trial.ending.kind} | "
            f"{s.scan['epoch']} | {held} | {_rate(s.range_rate())} | {rates} | "
            f"{_count(s.trial.metrics.get('pass_rate'), '.2f')} | "
            f"{'-' if seconds is None else f'{seconds:.0f}'} |"
        )
    return lines


def _configuration_lines(configs: Sequence[Configuration]) -> list[str]:
    if not configs:
        return ["No configuration has a completed, scanned trial yet."]
    lines = [
        "Completed trials only. Lead of the largest: mean(this) - mean(largest) of the range "
        "scan's violation rate, with the half-width of its 95% Welch interval; 'worse' when "
        "the interval excludes zero.",
        "",
        "| configuration | parameters | seeds | mean rate | 95% CI | lead of the largest |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for c in configs:
        ci = "-" if c.rate.ci is None else f"{_rate(c.rate.ci[0])}..{_rate(c.rate.ci[1])}"
        if c.against_largest is None:
            versus = "-"
        else:
            gap = c.against_largest
            verdict = "worse" if _worse(gap) else "within noise"
            versus = f"{100 * gap.difference:+.3f} ± {100 * gap.half_width:.3f} pts: {verdict}"
        lines.append(
            f"| {c.label} | {c.parameters:,} | {c.rate.n} | {_rate(c.rate.mean)} | {ci} | {versus} |"
        )
    best = smallest_not_worse(configs)
    lines.append("")
    lines.append(
        "Smallest not worse than the largest beyond seed noise: "
        + (
            "not judged yet (the largest needs two completed seeds)"
            if best is None
            else f"{best.label}, {best.parameters:,} parameters"
        )
        + "."
    )
    return lines


def _correlation_text(c: Correlation) -> str:
    if c.rho is None:
        return f"- (n={c.models})"
    interval = "" if c.interval is None else f" ({c.interval[0]:.2f}..{c.interval[1]:.2f})"
    return f"{c.rho:.2f}{interval}, n={c.models}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.3f}%"


def _count(value: Any, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_pareto_plot(scanned: Sequence[ScannedTrial], path: Path) -> Path:
    """Parameters against the range scan's violation rate, every scanned model a point
    (coloured by its model), the Pareto front as a line; a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [s for s in scanned if s.has_range]
    if not points:
        raise UsageError(f"--plot {path}: no trial has a range scan to draw")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    shapes = sorted(
        {s.shape for s in points}, key=lambda shape: min(s.parameters for s in points if s.shape == shape)
    )
    colors = dict(zip(shapes, plt.rcParams["axes.prop_cycle"].by_key()["color"] * len(shapes), strict=False))
    for shape in shapes:
        for kind, marker, suffix in (("completed", "o", ""), ("stopped", "x", ", stopped by ASHA")):
            mine = [s for s in points if s.shape == shape and s.trial.ending.kind == kind]
            if mine:
                ax.scatter(
                    [s.parameters for s in mine],
                    [100 * s.rate for s in mine],
                    label=shape + suffix,
                    color=colors[shape],
                    alpha=0.75,
                    marker=marker,
                )
    front = pareto_front(points)
    ax.step(
        [s.parameters for s in front],
        [100 * s.rate for s in front],
        where="post",
        color="black",
        linewidth=1,
        label="Pareto front",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_xlabel("parameters")
    ax.set_ylabel("odd n violating, % of the range scan")
    ax.set_title(_scan_description(points), fontsize=8, wrap=True)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
