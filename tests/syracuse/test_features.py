"""Exact vectorised k-sequences and feature rows (docs/method.md), checked against
plain Python integers: the scalar reference in collatz_ray.syracuse.arith / features.reference_row."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from collatz_ray.errors import UsageError
from collatz_ray.syracuse import arith, limbs
from collatz_ray.syracuse.features import FeatureSpec, extract, features_of_limbs, reference_row
from collatz_ray.trainer.config import LOG_LAYERS, TrainConfig
from collatz_ray.trainer.model import LyapunovMLP, build_model, count_parameters, load_weights

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


# -- integers that stress the exact arithmetic -----------------------------------------------


def _forced_k(m: int, j: int) -> int:
    """The n with 3n + 1 = 2^m * j' for the odd j' >= j nearest to j that makes it
    divisible by 3 (2^m j' = 1 mod 3): its first k is exactly m."""
    j |= 1
    while (2**m * j) % 3 != 1:
        j += 2
    return (2**m * j - 1) // 3


all_ones = st.integers(min_value=1, max_value=400).map(lambda k: 2**k - 1)
thirds = st.integers(min_value=1, max_value=160).map(lambda m: 2 * m).map(lambda m: (2**m - 1) // 3)
forced = st.builds(
    _forced_k, st.integers(min_value=14, max_value=300), st.integers(min_value=1, max_value=2**80)
)
ones_runs = st.builds(
    lambda a, b, c: ((2**a - 1) << b) | c, st.integers(1, 120), st.integers(0, 120), st.integers(0, 2**20)
)
interesting = st.one_of(
    st.integers(min_value=1, max_value=2**64),
    st.integers(min_value=1, max_value=2**330),
    st.integers(min_value=2**200, max_value=2**420),
    st.just(1),
    st.just(2**127 - 1),
    st.just(2**128 + 1),
    st.just(3**150),
    st.integers(min_value=1, max_value=2**130).map(lambda v: 2 * v),  # even inputs
    all_ones,
    thirds,
    forced,
    ones_runs,
)


# -- k-sequences -------------------------------------------------------------------------------

# Both walks: the compiled one every CPU tensor takes, and the vectorised one CUDA takes
# (run here on the CPU). They must agree with plain Python integers, and so each other.
WALKS = pytest.mark.parametrize(
    "walk", [limbs.k_sequences, limbs.k_sequences_vectorised], ids=["compiled", "vectorised"]
)


def _k_rows(values: list[int], length: int, walk=limbs.k_sequences) -> list[list[int]]:
    return walk(limbs.from_ints(values), length).to(torch.int64).tolist()


@WALKS
@given(st.lists(interesting, min_size=1, max_size=24), st.integers(min_value=1, max_value=70))
@SETTINGS
def test_k_sequences_equal_the_scalar_reference(walk, values, length):
    assert _k_rows(values, length, walk) == [arith.k_sequence(v, length) for v in values]


@pytest.mark.parametrize(
    "n, first_k",
    [
        ((2**100 - 1) // 3, 100),  # the generic-step path (3l + 1 = 0 mod 2^18)
        ((2**18 - 1) // 3, 18),
        ((2**16 - 1) // 3, 16),  # k = 16, 17 do not fit a table nibble either
        (_forced_k(17, 5), 17),
        (_forced_k(300, 1), 300),  # k > 255 switches the result to int16
        (_forced_k(1000, 12345), 1000),
    ],
)
@WALKS
def test_large_first_k(walk, n, first_k):
    ks = walk(limbs.from_ints([n, 1, 27]), 12)
    assert int(ks[0, 0]) == first_k
    assert ks.to(torch.int64).tolist() == [arith.k_sequence(v, 12) for v in (n, 1, 27)]
    if first_k > 255:
        assert ks.dtype == torch.int16


@WALKS
def test_k_sequences_of_a_mixed_large_batch_and_long_lookahead(walk):
    # Rows finish at different times and the working set is compacted: every row must
    # still land where it belongs.
    import random

    rng = random.Random(5)
    values = [rng.getrandbits(rng.randint(1, 400)) | 1 for _ in range(600)]
    values += [1, 2, 4, 2**127 - 1, (2**100 - 1) // 3, _forced_k(40, 77), 2**300]
    length = 150
    assert _k_rows(values, length, walk) == [arith.k_sequence(v, length) for v in values]


def test_k_sequences_of_one_and_of_even_numbers():
    ks = _k_rows([1, 2, 8, 6], 5)
    assert ks[0] == [2] * 5
    assert [row[0] for row in ks[1:]] == [0, 0, 0]
    assert ks == [arith.k_sequence(v, 5) for v in (1, 2, 8, 6)]


@WALKS
def test_k_sequences_of_huge_values(walk):
    n = 3**4000 + 7  # about 6340 bits
    assert _k_rows([n, 5], 40, walk) == [arith.k_sequence(n, 40), arith.k_sequence(5, 40)]


# -- limbs -----------------------------------------------------------------------------------


@given(
    st.lists(st.integers(min_value=0, max_value=2**400), min_size=1, max_size=30),
    st.integers(min_value=0, max_value=3),
)
@SETTINGS
def test_from_ints_to_ints_round_trip(values, extra_width):
    t = limbs.from_ints(values)
    assert t.dtype == torch.int64 and t.shape[0] == len(values)
    assert bool((t >= 0).all()) and bool((t < 2**32).all())
    assert limbs.to_ints(t) == values
    wide = limbs.from_ints(values, width=t.shape[1] + extra_width)
    assert limbs.to_ints(wide) == values


@given(st.lists(st.integers(min_value=1, max_value=2**300), min_size=1, max_size=20))
@SETTINGS
def test_bit_lengths_residues_and_log2(values):
    t = limbs.from_ints(values)
    assert limbs.bit_lengths(t).tolist() == [v.bit_length() for v in values]
    for m in (3, 9, 27, 81, 1000003):
        assert limbs.residue(t, m).tolist() == [v % m for v in values]
    got = limbs.log2(t).tolist()
    for v, g in zip(values, got):
        assert g == pytest.approx(math.log2(v), rel=1e-14, abs=1e-12)


# -- feature rows ------------------------------------------------------------------------------

MODES = [dict(), dict(k_shifted=True), dict(k_only=True), dict(k_only=True, k_shifted=True)]


@pytest.mark.parametrize("mode", MODES, ids=["full", "k_shifted", "k_only", "k_only+k_shifted"])
@given(
    values=st.lists(interesting, min_size=1, max_size=16), lookahead=st.integers(min_value=1, max_value=40)
)
@SETTINGS
def test_extract_equals_reference_row_exactly(mode, values, lookahead):
    got = extract(values, lookahead, **mode)
    expected = torch.tensor([reference_row(v, lookahead, **mode) for v in values], dtype=torch.float32)
    assert got.dtype == torch.float32
    assert got.shape == expected.shape
    assert torch.equal(got, expected), (got - expected).abs().max()


def test_reference_row_layout():
    n, L = 27, 4
    row = reference_row(n, L)
    ks = arith.k_sequence(n, L)
    assert row == pytest.approx(
        [math.log10(27) / 40, 0 / 2, 0 / 8, 0 / 26, 27 / 80, (L * math.log2(3) - sum(ks)) / 10]
        + [k / 10 for k in ks]
    )
    assert reference_row(n, L, k_shifted=True)[6:] == pytest.approx([(k - 2) / 10 for k in ks])
    assert reference_row(n, L, k_only=True) == pytest.approx([k / 10 for k in ks])
    # k is clipped at 10
    big_k = (2**100 - 1) // 3
    assert reference_row(big_k, 2)[6:] == [1.0, 0.2]


@pytest.mark.parametrize("L", [1, 10, 20, 100])
def test_dims(L):
    assert FeatureSpec(L).dim == 6 + L
    assert FeatureSpec(L, k_only=True).dim == L
    assert FeatureSpec(L, k_shifted=True).dim == 6 + L
    assert extract([3, 5, 2**90 + 1], L).shape == (3, 6 + L)
    assert extract([3, 5], L, k_only=True).shape == (2, L)
    assert extract([], L).shape == (0, 6 + L)


odd_values = st.one_of(
    st.integers(min_value=0, max_value=2**140).map(lambda v: 2 * v + 1),
    st.integers(min_value=2**200, max_value=2**330).map(lambda v: v | 1),
    st.sampled_from([1, 3, 5, 7, 21, 27, 85, 341, 2**127 - 1] + list(arith.DEFAULT_TEST_SEEDS)),
    thirds.filter(lambda v: v % 2 == 1),
    forced.filter(lambda v: v % 2 == 1),
)


@pytest.mark.parametrize("mode", MODES, ids=["full", "k_shifted", "k_only", "k_only+k_shifted"])
@given(values=st.lists(odd_values, min_size=1, max_size=16), lookahead=st.integers(1, 30))
@SETTINGS
def test_offset_rows_are_the_rows_of_t_power(mode, values, lookahead):
    spec = FeatureSpec(lookahead, **mode)
    feats = features_of_limbs(limbs.from_ints(values), spec, offsets=(0, 1, 4, 8))
    for j in (0, 1, 4, 8):
        expected = torch.tensor(
            [reference_row(arith.syracuse_power(v, j), lookahead, **mode) for v in values],
            dtype=torch.float32,
        )
        assert feats.rows[j].shape == expected.shape
        assert torch.allclose(feats.rows[j], expected, rtol=0, atol=1e-6), (j, feats.rows[j] - expected)
    assert feats.first_k.tolist() == [arith.k_sequence(v, 1)[0] for v in values]
    assert torch.allclose(
        feats.ln_n, torch.tensor([math.log(v) for v in values], dtype=torch.float64), rtol=1e-14, atol=1e-12
    )
    assert torch.allclose(
        feats.drift,
        torch.tensor([arith.drift(v, lookahead) for v in values], dtype=torch.float64),
        rtol=0,
        atol=1e-9,
    )


def test_offset_rows_reach_one_and_stay():
    # 5 -> 1 after one step; T^4 and T^8 of it are 1, whose k-sequence is all 2s.
    feats = features_of_limbs(limbs.from_ints([5, 1]), FeatureSpec(6), offsets=(0, 1, 4, 8))
    one = torch.tensor(reference_row(1, 6), dtype=torch.float32)
    for j in (1, 4, 8):
        assert torch.allclose(feats.rows[j][0], one, atol=1e-6)
        assert torch.allclose(feats.rows[j][1], one, atol=1e-6)


@pytest.mark.parametrize("lookahead", [0, -1, 1.5, "3", None, True])
def test_extract_rejects_bad_lookahead(lookahead):
    with pytest.raises(UsageError, match="lookahead"):
        extract([3, 5], lookahead)


@pytest.mark.parametrize("values", [[0], [3, 0], [-5], [3, -(2**80)], [2.5], [3.0], ["7"], [None], [5, "x"]])
def test_extract_rejects_values_below_one_or_not_integers(values):
    with pytest.raises(UsageError) as info:
        extract(values, 10)
    assert "\n" not in str(info.value)
    bad_index = next(i for i, v in enumerate(values) if not (type(v) is int and v >= 1))
    assert f"values[{bad_index}]" in str(info.value)


def test_extract_rejects_booleans_consistently():
    with pytest.raises(UsageError):
        extract([True], 10)


# -- model: parameter counts and the seed checkpoint format ------------------------------------


@pytest.mark.parametrize("L, expected", [(10, 4_405_250), (20, 4_425_730), (100, 4_589_570)])
def test_parameter_count_of_the_published_stack(L, expected):
    assert LOG_LAYERS == (2048, 1024, 1024, 512, 512, 512, 256, 128, 64)
    model = build_model(TrainConfig(layers=LOG_LAYERS, lookahead=L))
    assert count_parameters(model) == expected


def test_model_layout_and_output():
    model = LyapunovMLP(7, (5, 3), beta_init=0.35)
    mods = list(model.net)
    assert [type(m) for m in mods] == [
        nn.Linear,
        nn.LeakyReLU,
        nn.Linear,
        nn.LeakyReLU,
        nn.Linear,
        nn.Softplus,
    ]
    assert all(m.negative_slope == 0.1 for m in mods if isinstance(m, nn.LeakyReLU))
    assert model.beta == pytest.approx(0.35)
    x = torch.randn(11, 7)
    v = model(x)
    assert v.shape == (11,)
    assert torch.allclose(v, model.net(x).squeeze(-1) + 1e-6)
    assert bool((v > 0).all())
    linear = build_model(TrainConfig(linear=True, lookahead=4))
    assert [type(m) for m in linear.net] == [nn.Linear, nn.Softplus]
    assert count_parameters(linear) == (6 + 4) + 1 + 1  # weights, bias, drift_param


class _OriginalModel(nn.Module):
    """The published experiment's model, written independently of collatz_ray.trainer.model."""

    def __init__(self, d: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.drift_param = nn.Parameter(torch.tensor(0.35))
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(d, h), nn.LeakyReLU(0.1)]
            d = h
        self.net = nn.Sequential(*layers, nn.Linear(d, 1), nn.Softplus())

    def forward(self, x):
        return self.net(x).squeeze(-1) + 1e-6


def test_seed_format_state_dict_loads_and_gives_the_same_v(tmp_path):
    torch.manual_seed(3)
    original = _OriginalModel(16, (8, 8))
    with torch.no_grad():
        original.drift_param.fill_(0.5)
    state = original.state_dict()
    assert list(state) == [
        "drift_param",
        "net.0.weight",
        "net.0.bias",
        "net.2.weight",
        "net.2.bias",
        "net.4.weight",
        "net.4.bias",
    ]
    torch.save(state, tmp_path / "model.pth")
    loaded = torch.load(tmp_path / "model.pth", weights_only=True)

    model = build_model(TrainConfig(layers=(8, 8), lookahead=10))
    assert list(model.state_dict()) == list(state)
    load_weights(model, loaded, source="model.pth")
    assert model.beta == pytest.approx(0.5)
    x = extract([27, 31, 2**100 + 1], 10)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))

    # A state_dict whose shapes do not match the flags is one UsageError line.
    wrong = build_model(TrainConfig(layers=(8, 8), lookahead=20))
    with pytest.raises(UsageError, match="net.0.weight"):
        load_weights(wrong, loaded, source="model.pth")
    with pytest.raises(UsageError, match="missing|unexpected"):
        load_weights(build_model(TrainConfig(layers=(8,), lookahead=10)), loaded, source="model.pth")
