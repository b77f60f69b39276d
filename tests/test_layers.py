"""What import-linter (pyproject.toml, run by .ci/run) cannot see: which heavy libraries a
module loads when it is imported, including through imports deferred into functions
that run at import time. Each module is imported in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Module -> the libraries its import must not load.
LIGHT = {
    # Summaries open on a laptop without torch or Ray (docs/results.md).
    "collatz_ray.results": ("torch", "ray"),
    "collatz_ray.results.__main__": ("torch", "ray"),
    # A bad space, flag or storage is refused before anything heavy loads.
    "collatz_ray.tune": ("torch", "ray", "optuna", "pandas"),
    "collatz_ray.replicate": ("torch", "ray", "optuna", "pandas"),
    # The search described without Ray (search/ray/ is the only Ray code).
    "collatz_ray.search": ("ray",),
    "collatz_ray.search.pipeline": ("ray", "torch"),
    "collatz_ray.search.spaces": ("ray", "torch"),
    # The trainer's torch-free parts, which results and the search's commands import.
    "collatz_ray.trainer.metrics": ("torch", "ray"),
    "collatz_ray.trainer.text": ("torch", "ray"),
    "collatz_ray.trainer.bank": ("torch", "ray"),
    "collatz_ray": ("torch", "ray", "optuna", "pandas"),
}


def _loaded(modules: list[str], heavy: tuple[str, ...]) -> list[str]:
    """Which of `heavy` a fresh interpreter holds after importing `modules`."""
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint(' '.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


@pytest.mark.parametrize("heavy", sorted(set(LIGHT.values())))
def test_importing_loads_no_heavy_library(heavy):
    """One interpreter per set of forbidden libraries (an interpreter costs a second or
    two); when one loads, each module is tried alone to name it."""
    modules = sorted(m for m, h in LIGHT.items() if h == heavy)
    if _loaded(modules, heavy):
        culprits = {m: _loaded([m], heavy) for m in modules}
        raise AssertionError(
            f"importing loads what it must not: { ({m: h for m, h in culprits.items() if h}) }"
        )


def test_the_check_can_fail():
    """The same probe sees a library that a module does load."""
    assert _loaded(["collatz_ray.trainer.loop"], ("torch", "ray")) == ["torch"]
