"""Feature rows (docs/method.md), computed exactly and vectorised.

Full mode, d = 6 + L columns:
    log10(n)/40, (n mod 3)/2, (n mod 9)/8, (n mod 27)/26, (n mod 81)/80, drift/10,
    min(k_1,10)/10, ..., min(k_L,10)/10
`k_shifted` writes each k column as (min(k,10) - 2)/10; `k_only` keeps only the k's.

Training needs the rows of n, T(n), T^4(n) and T^8(n). The k-sequence of T^j(n) is the
k-sequence of n shifted by j (for odd n, and at 1 too, where both stay 1), so one
sequence of length L + 8 serves all four. The other columns of T^j(n) come from n in
closed form: with S_j = k_0 + ... + k_(j-1),

    T^j(n) = (3^j n + a_j) / 2^S_j,    a_0 = 0,  a_(i+1) = 3 a_i + 2^S_i,

so T^j(n) mod 81 is exact modular arithmetic and log2 T^j(n) is
log2 n + j log2 3 + log2(1 + a_j / (3^j n)) - S_j, a sum of positive terms (no
cancellation): float64 is used only for the logarithm, as the method allows.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from collatz_ray.errors import UsageError
from collatz_ray.syracuse import limbs as L_
from collatz_ray.syracuse.arith import LOG2_3, k_sequence

K_CLIP = 10
LOG10_2 = math.log10(2)
# 2 is a primitive root mod 81: its powers repeat with period 54.
_POW2_MOD81 = [pow(2, e, 81) for e in range(54)]


@dataclass(frozen=True)
class FeatureSpec:
    """Which feature columns a model sees."""

    lookahead: int
    k_only: bool = False
    k_shifted: bool = False

    @property
    def dim(self) -> int:
        return self.lookahead if self.k_only else 6 + self.lookahead


@dataclass(frozen=True)
class OffsetFeatures:
    """Rows of T^j(n) for each requested offset j, plus what the loss needs of n."""

    rows: dict[int, torch.Tensor]  # offset j -> (N, d) float32
    ln_n: torch.Tensor  # (N,) float64, natural log of n
    drift: torch.Tensor  # (N,) float64, drift(n, L)
    first_k: torch.Tensor  # (N,) int64: k_1 of n; T(n) > n exactly when it is 1 (odd n > 1)


def extract(
    values: Sequence[int],
    lookahead: int,
    *,
    k_only: bool = False,
    k_shifted: bool = False,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Feature rows for Python ints >= 1, in input order: (N, d) float32 on `device`."""
    if not isinstance(lookahead, int) or isinstance(lookahead, bool) or lookahead < 1:
        raise UsageError(f"lookahead must be an integer >= 1, got {lookahead!r}")
    spec = FeatureSpec(lookahead, k_only=k_only, k_shifted=k_shifted)
    if len(values) == 0:
        return torch.empty((0, spec.dim), dtype=torch.float32, device=device)
    if not all(type(v) is int for v in values):  # the fast path: plain ints only
        values = [_as_int(v, i) for i, v in enumerate(values)]
    if min(values) < 1:
        i = next(i for i, v in enumerate(values) if v < 1)
        raise UsageError(f"values[{i}] must be an integer >= 1, got {values[i]!r}")
    n = L_.from_ints(values, device=device)
    return features_of_limbs(n, spec, offsets=(0,)).rows[0]


def _as_int(value: Any, index: int) -> int:
    """Integers of any integer type (numpy's too), but not bools or floats."""
    if isinstance(value, bool):
        raise UsageError(f"values[{index}] must be an integer >= 1, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise UsageError(f"values[{index}] must be an integer >= 1, got {value!r}") from None


def features_of_limbs(n: torch.Tensor, spec: FeatureSpec, *, offsets: Sequence[int] = (0,)) -> OffsetFeatures:
    """Rows of T^j(n) for j in `offsets` from one k-sequence of length L + max(offsets).

    Offsets other than 0 require odd n (every training and evaluation number is odd);
    an even n's T(n) is not the shifted sequence's value.
    """
    L = spec.lookahead
    reach = max(offsets)
    ks = L_.k_sequences(n, L + reach)
    clipped = ks.clamp_max(K_CLIP)
    log2_n = L_.log2(n)
    # int32 sums: torch's int16 -> int64 reduction is an order of magnitude slower.
    window_sums = {j: ks[:, j : j + L].sum(dim=1, dtype=torch.int32) for j in set(offsets) | {0}}
    drift_n = L * LOG2_3 - window_sums[0].to(torch.float64)

    rows: dict[int, torch.Tensor] = {}
    if spec.k_only:
        for j in offsets:
            rows[j] = _k_columns(clipped[:, j : j + L], spec, out=None)
    else:
        prefix = torch.nn.functional.pad(ks[:, :reach].to(torch.int64).cumsum(dim=1), (1, 0))
        log2_c, mod81_c = _offset_values(n, log2_n, prefix, sorted(set(offsets)))
        for j in offsets:
            drift = L * LOG2_3 - window_sums[j].to(torch.float64)
            m81 = mod81_c[j]
            row = torch.empty((n.shape[0], spec.dim), dtype=torch.float32, device=n.device)
            row[:, 0] = log2_c[j] * (LOG10_2 / 40)
            row[:, 1] = (m81 % 3) / 2
            row[:, 2] = (m81 % 9) / 8
            row[:, 3] = (m81 % 27) / 26
            row[:, 4] = m81 / 80
            row[:, 5] = drift / 10
            _k_columns(clipped[:, j : j + L], spec, out=row[:, 6:])
            rows[j] = row
    return OffsetFeatures(
        rows=rows, ln_n=log2_n * math.log(2), drift=drift_n, first_k=ks[:, 0].to(torch.int64)
    )


def _k_columns(clipped: torch.Tensor, spec: FeatureSpec, *, out: torch.Tensor | None) -> torch.Tensor:
    """min(k,10)/10 (or (min(k,10)-2)/10), written straight into the feature row."""
    if out is None:
        out = torch.empty(clipped.shape, dtype=torch.float32, device=clipped.device)
    out.copy_(clipped)
    if spec.k_shifted:
        out.sub_(2)
    return out.div_(K_CLIP)


def _offset_values(
    n: torch.Tensor, log2_n: torch.Tensor, prefix: torch.Tensor, offsets: list[int]
) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """log2 T^j(n) (float64) and T^j(n) mod 81 (int64) from n and the prefix sums S_j
    (prefix[:, j] = S_j for j up to max(offsets))."""
    device = n.device
    pow2 = torch.tensor(_POW2_MOD81, dtype=torch.int64, device=device)
    n81 = L_.residue(n, 81)
    a81 = torch.zeros_like(n81)  # a_j mod 81
    ratio = torch.zeros_like(log2_n)  # a_j / (3^j n)
    log2s, mods = {}, {}
    for j in range(max(offsets) + 1):
        if j in offsets:
            s_j = prefix[:, j]
            log2_c = log2_n + j * LOG2_3 + torch.log1p(ratio) / math.log(2) - s_j.to(torch.float64)
            # T^j(n) = 1 exactly when the sum rounds below 1/2 (every other value is >= 2).
            log2s[j] = torch.where(log2_c < 0.5, 0.0, log2_c)
            inverse = pow2[(-s_j) % 54]
            mods[j] = ((pow(3, j, 81) * n81 + a81) % 81) * inverse % 81
        s_j = prefix[:, j]
        a81 = (3 * a81 + pow2[s_j % 54]) % 81
        # a_(j+1) / (3^(j+1) n) = a_j / (3^j n) + 2^S_j / (3^(j+1) n)
        ratio = ratio + torch.exp2(s_j.to(torch.float64) - (j + 1) * LOG2_3 - log2_n)
    return log2s, mods


def reference_row(n: int, lookahead: int, *, k_only: bool = False, k_shifted: bool = False) -> list[float]:
    """One feature row the plain way, integer by integer: the readable definition that
    tests check the vectorised path against and the benchmark's naive baseline."""
    ks = k_sequence(n, lookahead)
    kcols = [((min(k, K_CLIP) - 2) if k_shifted else min(k, K_CLIP)) / K_CLIP for k in ks]
    if k_only:
        return kcols
    drift = lookahead * LOG2_3 - sum(ks)
    head = [math.log10(max(1, n)) / 40, (n % 3) / 2, (n % 9) / 8, (n % 27) / 26, (n % 81) / 80, drift / 10]
    return head + kcols
