"""How much a metric moves between seeds, and whether one configuration's lead over
another is larger than that: means, spreads, Student-t intervals and Welch's
difference of means, in plain Python (no scipy).

A replicated configuration has a handful of seeds (2 to 10, say), too few for a normal
approximation: the 95% interval of a mean of n values uses Student's t with n - 1
degrees of freedom (12.7 for two seeds, 2.26 for ten), and the lead of one configuration
over another uses Welch's interval, which does not assume that both spread alike. The
t quantile comes from the regularized incomplete beta function by bisection, exact to
far more digits than any count of violations needs.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

#: The confidence of every interval shown.
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Spread:
    """One metric over the seeds of one configuration. std and ci are None below two
    values (one seed says nothing about the others)."""

    n: int
    mean: float
    std: float | None
    lowest: float
    highest: float
    ci: tuple[float, float] | None


def spread(
    values: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> Spread:
    """Mean, sample standard deviation, min..max and the t-interval of the mean, cut to
    the values the metric can take (`bounds`: a count is never below 0, a percentage
    never above 100), which a wide interval of a few seeds would otherwise cross."""
    if not values:
        raise ValueError("spread of no values")
    n, mean = len(values), statistics.fmean(values)
    if n < 2:
        return Spread(n, mean, None, min(values), max(values), None)
    std = statistics.stdev(values)
    half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    ci = (max(bounds[0], mean - half), min(bounds[1], mean + half))
    return Spread(n, mean, std, min(values), max(values), ci)


@dataclass(frozen=True)
class Lead:
    """How far the best configuration's mean lies below the next one's (lower is better):
    `difference` = mean(next) - mean(best), with the half-width of its Welch interval."""

    difference: float
    half_width: float
    #: Welch-Satterthwaite degrees of freedom; None when neither sample varies.
    df: float | None

    @property
    def beyond_noise(self) -> bool:
        """The interval excludes zero: the lead is larger than seed noise (Welch's
        two-sided t-test at 1 - CONFIDENCE). Equal means never are."""
        return self.difference - self.half_width > 0


def lead(best: Sequence[float], runner_up: Sequence[float], *, confidence: float = CONFIDENCE) -> Lead | None:
    """The lead of `best` over `runner_up`, or None when either has fewer than two values."""
    if len(best) < 2 or len(runner_up) < 2:
        return None
    shares = [statistics.variance(v) / len(v) for v in (best, runner_up)]
    difference = statistics.fmean(runner_up) - statistics.fmean(best)
    se2 = sum(shares)
    if se2 == 0:  # both constant: the difference is exact
        return Lead(difference, 0.0, None)
    df = se2**2 / sum(s**2 / (len(v) - 1) for s, v in zip(shares, (best, runner_up)))
    return Lead(difference, t_quantile(0.5 + confidence / 2, df) * math.sqrt(se2), df)


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile: the t with P(T <= t) = p, for 0.5 <= p < 1 and df > 0."""
    if not (0.5 <= p < 1 and df > 0):
        raise ValueError(f"t_quantile needs 0.5 <= p < 1 and df > 0, got p={p}, df={df}")
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, 2 * high
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
    return (low + high) / 2


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with df degrees of freedom."""
    tail = 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t >= 0 else tail


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction
    (evaluated on the side of x where it converges fast)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1 - front * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz's method)."""
    tiny = 1e-300

    def guarded(value: float) -> float:
        return tiny if abs(value) < tiny else value

    c, d = 1.0, 1 / guarded(1 - (a + b) * x / (a + 1))
    result = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 / guarded(1 + numerator * d)
            c = guarded(1 + numerator / c)
            result *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return result
