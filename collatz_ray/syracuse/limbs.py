"""Exact big-integer Syracuse arithmetic, vectorised over a batch, on CPU or CUDA.

A batch of integers is an int64 tensor of shape (N, W): W little-endian 32-bit limbs per
row. Limbs are stored in 64-bit lanes so that a limb times a multiplier below 2^27 plus
a carry never overflows, which is what the block step below needs.

Why blocks: stepping 3c+1, counting trailing zeros and shifting one Syracuse step at a
time costs dozens of tensor operations per step over every limb. But the first steps of
a Syracuse orbit depend only on the low bits of c (the parity-vector fact behind every
Collatz sieve): write c = 2^B h + l with l < 2^B; while the k's consumed so far sum to
S < B and the next 3r+1 has a one bit below B - S, m steps take c to

    c_m = 3^m 2^(B-S) h + r_m,      r_m = (3^m l + a_m) / 2^S,

and m, S, r_m and the k's themselves are functions of l alone. A table over all 2^B
residues turns about B/2 Syracuse steps into one multiply-add on the limbs. The rare l
whose very first k is >= B (3l+1 = 0 mod 2^B) takes one exact generic step instead.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from collatz_ray.syracuse.arith import MAX_BITS

LIMB_BITS = 32
LIMB_MASK = (1 << LIMB_BITS) - 1
#: Bits of c resolved per table lookup: 2 * 3^16 < 2^27 keeps limb products below 2^59,
#: and the table (2^16 entries of 32 bytes) stays in cache, which the CPU kernel needs.
BLOCK_BITS = 16
#: Upper bound of the bits one Syracuse step can add: log2(3/2) for odd c, 2 for even c.
_GROWTH_PER_STEP = 0.585


#: Steps one table entry may take: 15 k's of 4 bits each pack into one 60-bit word.
_MAX_TABLE_STEPS = 15
_NIBBLES = 15


@functools.cache
def _block_table_numpy(bits: int) -> np.ndarray:
    """Per residue l < 2^B: (steps m, multiplier 3^m 2^(B-S), remainder r_m, k's packed
    as 4-bit nibbles, first k first). Every k inside a table step is below B <= 16."""
    size = 1 << bits
    r = np.arange(size, dtype=np.int64)
    shift = np.zeros(size, dtype=np.int64)
    steps = np.zeros(size, dtype=np.int64)
    pow3 = np.ones(size, dtype=np.int64)
    packed = np.zeros(size, dtype=np.int64)
    alive = np.ones(size, dtype=bool)
    for _ in range(_MAX_TABLE_STEPS):
        x = 3 * r + 1
        k = np.round(np.log2((x & -x).astype(np.float64))).astype(np.int64)
        # The step is determined by l alone only if 3r+1 has a one bit below B - S;
        # k < 16 keeps every k in one 4-bit nibble.
        alive &= (k < bits - shift) & (k < 16)
        idx = np.nonzero(alive)[0]
        packed[idx] |= k[idx] << (4 * steps[idx])
        r[idx] = x[idx] >> k[idx]
        shift[idx] += k[idx]
        steps[idx] += 1
        pow3[idx] *= 3
    multiplier = pow3 << (bits - shift)
    return np.stack([steps, multiplier, r, packed], axis=1)


@functools.lru_cache(maxsize=8)
def _block_table(device: torch.device) -> torch.Tensor:
    return torch.from_numpy(_block_table_numpy(BLOCK_BITS)).to(device)


def width_for(bits: int, steps: int) -> int:
    """Limbs that hold a `bits`-bit integer after `steps` Syracuse steps, with headroom."""
    return (bits + int(steps * _GROWTH_PER_STEP) + 2 + BLOCK_BITS) // LIMB_BITS + 2


def from_ints(
    values: Sequence[int], *, width: int | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Python ints >= 0 -> (N, W) limb tensor (W from the largest value unless given)."""
    if width is None:
        top = max(values).bit_length() if len(values) else 1
        width = max(1, -(-top // LIMB_BITS))
    nbytes = 4 * width
    raw = b"".join(v.to_bytes(nbytes, "little") for v in values)
    limbs = np.frombuffer(raw, dtype="<u4").reshape(len(values), width).astype(np.int64)
    return torch.from_numpy(limbs).to(device)


def random_odd(rng: np.random.Generator, top_bit: np.ndarray, *, width: int) -> torch.Tensor:
    """Odd integers whose highest set bit is top_bit[i] (so 2^b + 1 <= n < 2^(b+1)), the
    bits between uniform from `rng`, as (N, width) limbs; width must hold bit max(top_bit)."""
    count = top_bit.shape[0]
    raw = rng.integers(0, 1 << 32, size=(count, width), dtype=np.int64)
    low_bits = np.clip(top_bit[:, None] - 32 * np.arange(width)[None, :], 0, 32)
    raw &= (np.int64(1) << low_bits) - 1
    raw[np.arange(count), top_bit // 32] |= np.int64(1) << (top_bit % 32)
    raw[:, 0] |= 1
    return torch.from_numpy(raw)


def to_ints(limbs: torch.Tensor) -> list[int]:
    """(N, W) limb tensor (normalised) -> Python ints."""
    raw = limbs.to("cpu", torch.int64).numpy().astype("<u4").tobytes()
    step = 4 * limbs.shape[1]
    return [int.from_bytes(raw[i : i + step], "little") for i in range(0, len(raw), step)]


def pad(limbs: torch.Tensor, width: int) -> torch.Tensor:
    if limbs.shape[1] >= width:
        return limbs
    return torch.nn.functional.pad(limbs, (0, width - limbs.shape[1]))


def bit_lengths(limbs: torch.Tensor) -> torch.Tensor:
    """Bit length of every row (0 for zero)."""
    nonzero = limbs != 0
    width = limbs.shape[1]
    # Index of the highest nonzero limb: last True along dim 1.
    top = width - 1 - torch.flip(nonzero, dims=[1]).to(torch.int8).argmax(dim=1)
    top_limb = limbs.gather(1, top[:, None]).squeeze(1)
    top_bits = torch.floor(torch.log2(top_limb.to(torch.float64).clamp_min(1))).to(torch.int64) + 1
    any_bits = nonzero.any(dim=1)
    return torch.where(any_bits, top * LIMB_BITS + top_bits, torch.zeros_like(top))


def log2(limbs: torch.Tensor) -> torch.Tensor:
    """float64 log2 of every row (rows must be >= 1), from its top 96 bits: exact to 1 ulp."""
    limbs = pad(limbs, 3)
    width = limbs.shape[1]
    nonzero = limbs != 0
    top = (width - 1 - torch.flip(nonzero, dims=[1]).to(torch.int8).argmax(dim=1)).clamp_min(1)
    hi = limbs.gather(1, top[:, None]).squeeze(1).to(torch.float64)
    mid = limbs.gather(1, (top - 1)[:, None]).squeeze(1).to(torch.float64)
    below = (top - 2).clamp_min(0)
    lo = torch.where(
        top >= 2, limbs.gather(1, below[:, None]).squeeze(1).to(torch.float64), torch.zeros_like(hi)
    )
    scale = float(1 << LIMB_BITS)
    mantissa = (hi * scale + mid) + lo / scale
    return torch.log2(mantissa) + (top - 1).to(torch.float64) * LIMB_BITS


def residue(limbs: torch.Tensor, modulus: int) -> torch.Tensor:
    """Every row mod a small modulus (< 2^20), exactly."""
    width = limbs.shape[1]
    weights = torch.tensor(
        [pow(2, LIMB_BITS * j, modulus) for j in range(width)], dtype=torch.int64, device=limbs.device
    )
    return ((limbs % modulus) * weights).sum(dim=1) % modulus


def _normalise(t: torch.Tensor) -> torch.Tensor:
    """Propagate carries (in place) until every limb is below 2^32; the top limb must
    absorb them. Products below 2^62 need two passes, a third only for carry ripples."""
    passes = 0
    while True:
        carry = t >> LIMB_BITS
        if passes >= 2 and not bool(carry.any()):
            return t
        t &= LIMB_MASK
        t[:, 1:] += carry[:, :-1]
        passes += 1


def _generic_step(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One exact step x = 3c+1, k = v2(x), c' = x >> k for rows with any k."""
    x = c * 3
    x[:, 0] += 1
    x = _normalise(x)
    nonzero = x != 0
    first = nonzero.to(torch.int8).argmax(dim=1)  # lowest nonzero limb
    low_limb = x.gather(1, first[:, None]).squeeze(1)
    low_bit = low_limb & -low_limb
    k = first * LIMB_BITS + torch.round(torch.log2(low_bit.to(torch.float64))).to(torch.int64)
    return shift_right(x, k), k


def shift_right(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Row-wise x >> k for normalised limbs and per-row shifts k >= 0."""
    n, width = x.shape
    q = (k // LIMB_BITS)[:, None]
    s = (k % LIMB_BITS)[:, None]
    padded = torch.nn.functional.pad(x, (0, 2))
    cols = torch.arange(width, device=x.device)[None, :] + q
    cols = cols.clamp_max(width + 1)
    lo = padded.gather(1, cols)
    hi = padded.gather(1, (cols + 1).clamp_max(width + 1))
    return ((lo >> s) | (hi << (LIMB_BITS - s))) & LIMB_MASK


def k_sequences(limbs: torch.Tensor, length: int) -> torch.Tensor:
    """The k-sequence of every row (docs/method.md): (N, length), exact for any size.

    It applies 3c+1 to even c as well (k = 0) and does not stop at 1 (k = 2 forever).
    The dtype is uint8 or int16 (k > 255 needs integers beyond 2^255); values up to
    2^32000 are supported. CPU tensors take the compiled walk (collatz_ray.syracuse._compiled_walk),
    CUDA tensors the vectorised one below: the same table, the same arithmetic.
    """
    n = limbs.shape[0]
    bits = int(bit_lengths(limbs).max()) if n else 1
    if bits > MAX_BITS:
        raise ValueError(f"k_sequences supports integers below 2^{MAX_BITS}")
    if limbs.device.type != "cpu":
        return k_sequences_vectorised(limbs, length, bits=bits)
    from collatz_ray.syracuse._compiled_walk import k_sequences as compiled_walk

    c = pad(limbs, width_for(bits, length + BLOCK_BITS)).numpy().copy()
    out = np.empty((n, length), dtype=np.int16)
    compiled_walk(c, length, _block_table_numpy(BLOCK_BITS), BLOCK_BITS, out)
    return torch.from_numpy(out)


def k_sequences_vectorised(limbs: torch.Tensor, length: int, *, bits: int | None = None) -> torch.Tensor:
    """k_sequences as whole-batch tensor operations: the CUDA path (tested on the CPU)."""
    n = limbs.shape[0]
    device = limbs.device
    table = _block_table(device)
    if bits is None:
        bits = int(bit_lengths(limbs).max()) if n else 1
    # The k's of table steps go into a stream of 4-bit nibbles, 15 to an int64 word:
    # two index-adds of one word per row per block instead of a scatter of B k's.
    # Larger k's (generic steps) leave a zero nibble and are patched in at the end.
    words = -(-(length + 2 * _NIBBLES) // _NIBBLES) + 1
    stream = torch.zeros(n * words, dtype=torch.int64, device=device)
    patches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    # Working set. A row that has its `length` k's is frozen (masked) until enough rows
    # are done to make gathering the rest worth it.
    c = pad(limbs, width_for(bits, length + BLOCK_BITS))
    rows = torch.arange(n, device=device)
    pos = torch.zeros(n, dtype=torch.int64, device=device)
    active = torch.ones(n, dtype=torch.bool, device=device)
    still = n
    low_mask = (1 << BLOCK_BITS) - 1
    while True:
        low = c[:, 0] & low_mask
        steps, multiplier, remainder, packed = table.index_select(0, low).unbind(1)
        steps = steps * active
        word, nib = pos // _NIBBLES, pos % _NIBBLES
        fit = 4 * (_NIBBLES - nib)
        low_part = (packed & ((1 << fit) - 1)) << (4 * nib)
        flat = rows * words + word
        stream.index_add_(0, flat, low_part)
        stream.index_add_(0, flat + 1, packed >> fit)
        # c >> B, then times 3^m 2^(B-S) plus r_m: m Syracuse steps in one multiply-add.
        high = torch.empty_like(c)
        high[:, :-1] = (c[:, :-1] >> BLOCK_BITS) | ((c[:, 1:] << (LIMB_BITS - BLOCK_BITS)) & LIMB_MASK)
        high[:, -1] = c[:, -1] >> BLOCK_BITS
        high *= multiplier[:, None]
        high[:, 0] += remainder
        c = _normalise(high) if still == rows.numel() else torch.where(active[:, None], _normalise(high), c)
        pos = pos + steps
        stuck = (steps == 0) & active
        if bool(stuck.any()):
            # 3l+1 = 0 mod 2^B: k >= B depends on the high limbs; take one exact step.
            idx = torch.nonzero(stuck).squeeze(1)
            stepped, k = _generic_step(c[idx])
            c[idx] = stepped
            patches.append((rows[idx], pos[idx], k))
            pos[idx] += 1
        active = pos < length
        still = int(active.sum())
        if still == 0:
            break
        if still < 0.6 * rows.numel():
            c, pos, rows, active = c[active], pos[active], rows[active], active[active]
        # One block adds at most B * 0.585 + 1 < 32 bits: keep one all-zero top limb.
        while c.shape[1] > 2 and not bool(c[:, -2].any()):
            c = c[:, :-1]
    # Unpack on bytes (little-endian words): byte b holds nibbles 2b and 2b+1; a word's
    # 15 nibbles are the first 15 of its 16.
    nibble_bytes = stream.view(torch.uint8).view(n, words, 8)
    nibbles = torch.stack([nibble_bytes & 15, nibble_bytes >> 4], dim=3).view(n, words, 16)
    big = max((int(k.max()) for _, _, k in patches if k.numel()), default=0) > 255
    ks = nibbles[:, :, :_NIBBLES].reshape(n, words * _NIBBLES)[:, :length]
    if big:
        ks = ks.to(torch.int16)
    for patch_rows, patch_pos, patch_k in patches:
        keep = patch_pos < length
        ks[patch_rows[keep], patch_pos[keep]] = patch_k[keep].to(ks.dtype)
    return ks
