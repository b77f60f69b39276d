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


@pytest.mark.parametrize("module", sorted(LIGHT))
def test_importing_loads_no_heavy_library(module):
    heavy = LIGHT[module]
    code = f"import sys, {module}\nprint(' '.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [], f"importing {module} loaded {out.stdout.split()}"


def test_the_check_can_fail():
    """The same probe sees a library that a module does load."""
    code = "import sys, collatz_ray.trainer.loop\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True", out.stderr[-2000:]
