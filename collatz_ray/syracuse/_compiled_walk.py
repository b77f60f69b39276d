"""The k-sequence on the CPU: the block-table walk of `collatz_ray.syracuse.limbs`, compiled.

On a CPU the vectorised torch walk spends its time in dozens of whole-batch tensor
passes per block. Compiled per row, the same walk keeps one integer's few limbs in
registers, reads one table entry (32 bytes, a 2 MiB table that stays in cache) per block
and is about five times faster on two cores (`python -m collatz_ray.bench`). numba
compiles it once and caches the machine code next to this file.

Same arithmetic as limbs.k_sequences: c = 2^B h + l becomes 3^m 2^(B-S) h + r_m after
the m steps that the low B bits determine; an l whose first k is >= B takes one exact
generic step (3c+1, count trailing zeros, shift) instead.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange

LIMB_BITS = 32
LIMB_MASK = (1 << LIMB_BITS) - 1


# OpenMP first: it runs this kernel about 1.6x faster on two threads than numba's own
# workqueue pool. It shares the OpenMP runtime with torch, so setting numba's thread
# count also sets torch's: k_sequences below puts torch's back after every call.
numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]  # type: ignore[attr-defined]  # numba.config sets its names at import


def k_sequences(c: np.ndarray, length: int, table: np.ndarray, block_bits: int, out: np.ndarray) -> None:
    """Run the kernel on as many threads as torch may use (a Ray trial given one CPU
    sets torch to one thread, and numba must not take every core), and leave torch's
    setting as it found it."""
    threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]  # as above
    try:
        k_sequences_kernel(c, length, table, block_bits, out)
    finally:
        torch.set_num_threads(threads)


@njit(parallel=True, cache=True, error_model="numpy")
def k_sequences_kernel(
    c: np.ndarray, length: int, table: np.ndarray, block_bits: int, out: np.ndarray
) -> None:
    """Fill out[row, :length] with row's k-sequence; `c` (int64 limbs, with headroom for
    the growth of `length` steps) is consumed in place."""
    rows, width = c.shape
    low_mask = (1 << block_bits) - 1
    for row in prange(rows):
        limb = c[row]
        top = width - 1
        while top > 0 and limb[top] == 0:
            top -= 1
        pos = 0
        while pos < length:
            entry = limb[0] & low_mask
            steps = table[entry, 0]
            if steps > 0:
                packed = table[entry, 3]
                for i in range(min(steps, length - pos)):
                    out[row, pos + i] = (packed >> (4 * i)) & 15
                multiplier = table[entry, 1]
                carry = table[entry, 2]
                # c >> B, times 3^m 2^(B-S), plus r_m, carried limb by limb.
                for j in range(top + 2):
                    high = limb[j] >> block_bits
                    if j + 1 < width:
                        high |= (limb[j + 1] << (LIMB_BITS - block_bits)) & LIMB_MASK
                    t = high * multiplier + carry
                    limb[j] = t & LIMB_MASK
                    carry = t >> LIMB_BITS
                pos += steps
            else:
                _generic_step(limb, top, out, row, pos, length)
                pos += 1
                top = width - 1
            while top + 1 < width and limb[top + 1] != 0:
                top += 1
            while top > 0 and limb[top] == 0:
                top -= 1


@njit(cache=True, error_model="numpy")
def _generic_step(limb: np.ndarray, top: int, out: np.ndarray, row: int, pos: int, length: int) -> None:
    """x = 3c + 1, k = v2(x), c = x >> k, for any k (the table's blind spot, k >= B)."""
    width = limb.shape[0]
    carry = 1
    for j in range(min(top + 2, width)):
        t = limb[j] * 3 + carry
        limb[j] = t & LIMB_MASK
        carry = t >> LIMB_BITS
    zero_limbs = 0
    while limb[zero_limbs] == 0:
        zero_limbs += 1
    bits = 0
    while (limb[zero_limbs] >> bits) & 1 == 0:
        bits += 1
    for j in range(width):
        src = j + zero_limbs
        lo = limb[src] if src < width else 0
        hi = limb[src + 1] if src + 1 < width else 0
        limb[j] = ((lo >> bits) | (hi << (LIMB_BITS - bits))) & LIMB_MASK if bits else lo
    if pos < length:
        out[row, pos] = LIMB_BITS * zero_limbs + bits
