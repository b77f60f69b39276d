"""The scalar reference arithmetic (docs/method.md), checked against hand-worked values
and independent one-line definitions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collatz_ray.syracuse import arith


def _t_by_definition(n: int) -> int:
    """T(n) spelled out: odd n > 1 -> (3n+1) with every factor 2 removed; even n > 1 ->
    n with every factor 2 removed; n <= 1 -> 1."""
    if n <= 1:
        return 1
    x = 3 * n + 1 if n % 2 else n
    while x % 2 == 0:
        x //= 2
    return x


def test_the_five_test_seeds_have_the_published_step_counts():
    assert arith.DEFAULT_TEST_SEEDS == (111, 27, 703, 26623, 626331)
    steps = {s: len(arith.trajectory(s)) - 1 for s in arith.DEFAULT_TEST_SEEDS}
    assert steps == {111: 24, 27: 41, 703: 62, 26623: 113, 626331: 189}
    assert sum(steps.values()) == 429


def test_trajectory_starts_at_the_seed_ends_at_one_and_follows_t():
    traj = arith.trajectory(27)
    assert traj[0] == 27 and traj[-1] == 1 and traj.count(1) == 1
    assert traj[:4] == [27, 41, 31, 47]
    assert all(b == arith.syracuse(a) for a, b in zip(traj, traj[1:]))
    assert arith.trajectory(1) == [1]


@pytest.mark.parametrize(
    "n, expected",
    [
        (3, 5),  # 10 -> 5
        (5, 1),  # 16 -> 1
        (7, 11),  # 22 -> 11
        (27, 41),  # 82 -> 41
        (11, 17),  # 34 -> 17
        (21, 1),  # 64 -> 1
        (2**61 - 1, (3 * (2**61 - 1) + 1) // 2),  # 3n+1 = 2 (mod 4): one halving
    ],
)
def test_t_of_odd_numbers(n, expected):
    assert arith.syracuse(n) == expected


@pytest.mark.parametrize(
    "n, expected",
    [
        (2, 1),
        (4, 1),
        (6, 3),
        (12, 3),
        (40, 5),
        (96, 3),
        (2**200, 1),
        (2**150 * 7, 7),
    ],
)
def test_t_of_even_numbers_removes_every_factor_two(n, expected):
    assert arith.syracuse(n) == expected


@pytest.mark.parametrize("n", [1, 0, -1, -7, -(2**100)])
def test_t_at_or_below_one_is_one(n):
    assert arith.syracuse(n) == 1


@given(st.integers(min_value=-5, max_value=2**300))
@settings(max_examples=300, deadline=None)
def test_t_matches_its_definition(n):
    assert arith.syracuse(n) == _t_by_definition(n)


@pytest.mark.parametrize("seed", [27, 111, 703])
def test_t_power_stays_at_one(seed):
    steps = len(arith.trajectory(seed)) - 1
    for j in (steps, steps + 1, steps + 8, 10 * steps):
        assert arith.syracuse_power(seed, j) == 1
    assert arith.syracuse_power(seed, steps - 1) != 1
    assert arith.syracuse_power(1, 8) == 1
    assert arith.syracuse_power(5, 4) == 1  # T(5) = 1, then it stays


@given(st.integers(min_value=1, max_value=2**150), st.integers(min_value=0, max_value=12))
@settings(max_examples=200, deadline=None)
def test_t_power_is_repeated_t(n, j):
    expected = n
    for _ in range(j):
        expected = _t_by_definition(expected) if expected != 1 else 1
    assert arith.syracuse_power(n, j) == expected


def test_t_power_zero_is_the_identity_even_for_even_numbers():
    assert arith.syracuse_power(12, 0) == 12
    assert arith.syracuse_power(12, 1) == 3


def test_k_sequence_of_one_is_all_twos():
    assert arith.k_sequence(1, 1) == [2]
    assert arith.k_sequence(1, 100) == [2] * 100


def test_k_sequence_hand_worked():
    # 27 -> 82 (k=1) -> 41 -> 124 (k=2) -> 31 -> 94 (k=1) -> 47 -> 142 (k=1) -> 71
    assert arith.k_sequence(27, 4) == [1, 2, 1, 1]
    # 5 -> 16 (k=4) -> 1 -> 4 (k=2) -> 1 ...: it does not stop at 1
    assert arith.k_sequence(5, 4) == [4, 2, 2, 2]
    assert arith.k_sequence(27, 0) == []


@pytest.mark.parametrize("c", [2, 4, 6, 10, 2**100, 12345678])
def test_even_c_gives_k_zero_first(c):
    ks = arith.k_sequence(c, 3)
    assert ks[0] == 0
    # after the k=0 step c becomes 3c+1 (odd), and the sequence carries on from there
    assert ks[1:] == arith.k_sequence(3 * c + 1, 2)


def test_k_sequence_reaches_large_k():
    m = 100
    n = (2**m - 1) // 3  # 3n + 1 = 2^m
    assert arith.k_sequence(n, 3) == [m, 2, 2]


@given(st.integers(min_value=1, max_value=2**260), st.integers(min_value=1, max_value=30))
@settings(max_examples=200, deadline=None)
def test_k_sequence_matches_its_definition_and_shifts_along_t(n, length):
    c, expected = n, []
    for _ in range(length):
        x = 3 * c + 1
        k = 0
        while x % 2 == 0:
            x //= 2
            k += 1
        expected.append(k)
        c = x
    assert arith.k_sequence(n, length) == expected
    if n % 2 == 1:
        # The k-sequence of T(n) is that of n shifted by one (odd n, and 1 -> 1).
        assert arith.k_sequence(arith.syracuse(n), length - 1) == expected[1:]


def test_drift_is_l_log2_3_minus_the_k_sum():
    assert arith.drift(1, 10) == pytest.approx(10 * arith.LOG2_3 - 20)
    assert arith.drift(27, 4) == pytest.approx(4 * arith.LOG2_3 - 5)
    assert arith.LOG2_3 == pytest.approx(1.584962500721156)


def test_arithmetic_is_exact_far_beyond_64_bits():
    n = 2**127 - 1
    t = arith.syracuse(n)
    assert t == (3 * n + 1) // 2 and t.bit_length() == 128
    big = 3**200 + 2
    assert arith.syracuse(big) == _t_by_definition(big)


def test_hard_seed_list_is_the_spec_list():
    assert len(arith.HARD_SEEDS) == 54 and len(set(arith.HARD_SEEDS)) == 54
    assert arith.HARD_SEEDS[:5] == (27, 31, 41, 47, 54) and arith.HARD_SEEDS[-1] == 1117065
    assert set(arith.DEFAULT_TEST_SEEDS) <= set(arith.HARD_SEEDS)


def test_plain_orbit_stats_small_cases():
    assert arith.plain_orbit_stats(1) == (0, 1)
    assert arith.plain_orbit_stats(2) == (1, 2)
    assert arith.plain_orbit_stats(3) == (7, 16)  # 3 10 5 16 8 4 2 1
    assert arith.plain_orbit_stats(27) == (111, 9232)
