"""Exact Syracuse arithmetic, at any size.

arith.py is the reference on Python ints; limbs.py does the same on torch tensors of
32-bit limbs (CPU or CUDA), with the CPU walk compiled by numba (_compiled_walk.py);
features.py turns integers into the model's feature rows.
"""

from collatz_ray._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "syracuse": "arith",
        "syracuse_power": "arith",
        "trajectory": "arith",
        "k_sequence": "arith",
        "drift": "arith",
        "v2": "arith",
        "HARD_SEEDS": "arith",
        "DEFAULT_TEST_SEEDS": "arith",
        "FeatureSpec": "features",
        "extract": "features",
        "reference_row": "features",
    },
)

__all__ = [
    "DEFAULT_TEST_SEEDS",
    "FeatureSpec",
    "HARD_SEEDS",
    "drift",
    "extract",
    "k_sequence",
    "reference_row",
    "syracuse",
    "syracuse_power",
    "trajectory",
    "v2",
]
