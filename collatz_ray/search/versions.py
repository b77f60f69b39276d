"""The Ray and Optuna versions the test suite has passed on, checked before Ray starts.

collatz_ray leans on private parts of both (search/ray/_ray_private.py,
search/_optuna_private.py), which a new minor release may change without notice: a
search on an untested version could fail hours in, or resume an experiment wrongly. So
the commands that use them (tune, replicate, verify --address) refuse an installed
version outside the tested range in one line, before anything starts. The ranges are
pyproject.toml's pins (a test keeps the two equal). COLLATZ_RAY_SKIP_VERSION_CHECK=1
runs anyway, for trying a new release.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Iterable, Mapping

from collatz_ray.errors import UsageError

#: Package -> (lowest tested, first untested) release: the range [low, high).
TESTED: dict[str, tuple[str, str]] = {
    "ray": ("2.60", "2.61"),
    "optuna": ("5.1", "5.2"),
}
SKIP_ENV = "COLLATZ_RAY_SKIP_VERSION_CHECK"


def pinned_range(package: str) -> str:
    """The range as pyproject.toml writes it: '>=2.60,<2.61'."""
    low, high = TESTED[package]
    return f">={low},<{high}"


def check_tested_versions(
    packages: Iterable[str], *, installed: Mapping[str, str | None] | None = None
) -> None:
    """Refuse (UsageError) a package whose installed version (or the one `installed`
    gives; None: not installed) is outside the tested range, unless SKIP_ENV is 1."""
    if os.environ.get(SKIP_ENV) == "1":
        return
    for package in packages:
        version = installed[package] if installed is not None else _installed(package)
        expected = f"collatz_ray is tested with {package}{pinned_range(package)}"
        if version is None:
            raise UsageError(f"{package} is not installed; {expected}")
        low, high = TESTED[package]
        if not _release(low) <= _release(version) < _release(high):
            raise UsageError(
                f"{package} {version} is installed, but {expected} (pyproject.toml); install that "
                f"range, or set {SKIP_ENV}=1 to run anyway"
            )


def _installed(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of a version ('2.60.0rc1' -> (2, 60, 0)), padded so that
    2.60 and 2.60.0 compare equal. A pre-release counts as its release."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    if match is None:
        raise UsageError(f"cannot read the version {version!r}")
    parts = tuple(int(p) for p in match.group().split("."))
    return parts + (0,) * (3 - len(parts))
