"""The seed statistics against values from tables and textbook examples."""

from __future__ import annotations

import math
import statistics

import pytest

from collatz_ray.results.stats import incomplete_beta, lead, spread, t_cdf, t_quantile

#: Two-sided 95% (p = 0.975) and 99% (p = 0.995) Student-t quantiles from printed
#: tables, and one at a fractional df (Welch's df is rarely whole), from mpmath's
#: betainc solved for the quantile.
T_TABLE = [
    (0.975, 1, 12.7062),
    (0.975, 2, 4.3027),
    (0.975, 4, 2.7764),
    (0.975, 9, 2.2622),
    (0.975, 30, 2.0423),
    (0.975, 120, 1.9799),
    (0.995, 10, 3.1693),
    (0.975, 4.5, 2.65891),
    (0.975, 1e6, 1.95996),
]


@pytest.mark.parametrize("p, df, expected", T_TABLE)
def test_t_quantiles_match_the_tables(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-4)
    assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-12)


def test_the_median_and_the_symmetry_of_t():
    assert t_quantile(0.5, 3) == pytest.approx(0, abs=1e-12)
    assert t_cdf(-2.0, 5) == pytest.approx(1 - t_cdf(2.0, 5))
    with pytest.raises(ValueError):
        t_quantile(0.4, 3)
    with pytest.raises(ValueError):
        t_quantile(0.975, 0)


@pytest.mark.parametrize(
    "a, b, x", [(2.5, 1, 0.3), (1, 3.5, 0.7), (4, 4, 0.5), (0.5, 0.5, 0.5), (7, 1, 0.95)]
)
def test_incomplete_beta_identities(a, b, x):
    if b == 1:
        assert incomplete_beta(a, b, x) == pytest.approx(x**a, rel=1e-12)
    elif a == 1:
        assert incomplete_beta(a, b, x) == pytest.approx(1 - (1 - x) ** b, rel=1e-12)
    else:  # symmetric, at the middle
        assert incomplete_beta(a, b, x) == pytest.approx(0.5, rel=1e-12)
    assert incomplete_beta(a, b, 0) == 0 and incomplete_beta(a, b, 1) == 1


def test_spread_of_ten_seeds_of_one_configuration():
    """Ten seeds from 99 to 119 of 429 violations, as at 64x64 and 2000 epochs."""
    values = [99, 101, 104, 106, 108, 110, 111, 114, 117, 119]
    s = spread(values)
    assert (s.n, s.mean, s.lowest, s.highest) == (10, 108.9, 99, 119)
    assert s.std == pytest.approx(statistics.stdev(values))
    half = 2.2622 * s.std / math.sqrt(10)
    assert s.ci == pytest.approx((108.9 - half, 108.9 + half), abs=1e-3)
    assert s.ci[0] > 99 and s.ci[1] < 119  # the mean is known better than a single seed


def test_spread_of_one_seed_has_no_interval_and_bounds_cut_a_wide_one():
    one = spread([42])
    assert (one.n, one.mean, one.std, one.ci) == (1, 42, None, None)
    wide = spread([1.0, 99.0], bounds=(0.0, 100.0))  # t(0.975, 1) = 12.7: far past both ends
    assert wide.ci == (0.0, 100.0)
    with pytest.raises(ValueError):
        spread([])


def test_welch_on_the_textbook_example():
    """Welch's t-test, Wikipedia's first example (means 20.82 and 22.99): t = -2.46,
    df = 24.9 (25.0 unrounded), p = 0.021: at 95% the difference is larger than the noise."""
    a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    found = lead(a1, a2)
    assert found.difference == pytest.approx(22.9867 - 20.82, abs=1e-4)
    assert found.df == pytest.approx(24.99, abs=0.01)
    se = math.sqrt(statistics.variance(a1) / 15 + statistics.variance(a2) / 15)
    assert found.difference / se == pytest.approx(2.46, abs=0.01)
    assert found.half_width == pytest.approx(t_quantile(0.975, found.df) * se)
    assert 2 * (1 - t_cdf(found.difference / se, found.df)) == pytest.approx(0.021, abs=5e-4)
    assert found.beyond_noise
    # At 99% (p = 0.021 > 0.01) the same lead is within the noise.
    assert not lead(a1, a2, confidence=0.99).beyond_noise


def test_a_lead_within_the_seed_spread_is_noise():
    """Two configurations five violations apart, each spread like the ten seeds above."""
    best = [99, 101, 104, 106, 108, 110, 111, 114, 117, 119]
    runner_up = [v + 5 for v in best]
    found = lead(best, runner_up)
    assert found.difference == pytest.approx(5.0)
    assert found.half_width > 5 and not found.beyond_noise


def test_degenerate_leads():
    assert lead([3], [4, 5]) is None  # one seed: no spread to compare with
    same = lead([7, 7], [7, 7])
    assert (same.difference, same.half_width, same.df, same.beyond_noise) == (0, 0, None, False)
    exact = lead([7, 7], [9, 9])
    assert exact.beyond_noise and exact.half_width == 0
    assert not lead([9, 9], [7, 7]).beyond_noise  # the "best" is behind: never a lead
