"""The commands refuse Ray and Optuna versions outside the tested ranges in one line,
and the ranges are pyproject.toml's pins."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
from support.clitools import run_command

from collatz_ray.errors import UsageError
from collatz_ray.search.versions import SKIP_ENV, TESTED, check_tested_versions, pinned_range

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@pytest.fixture(autouse=True)
def no_skip(monkeypatch):
    monkeypatch.delenv(SKIP_ENV, raising=False)


def test_the_ranges_are_pyprojects_pins():
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pins = {re.match(r"[a-z]+", d).group(): re.sub(r"^[a-z]+(\[[^]]*\])?", "", d) for d in dependencies}
    assert {package: pins[package] for package in TESTED} == {p: pinned_range(p) for p in TESTED}


def test_the_installed_versions_pass():
    check_tested_versions(TESTED)


@pytest.mark.parametrize("version", ["2.60.0", "2.60.3", "2.60.1rc1", "2.60"])
def test_versions_inside_the_range_pass(version):
    check_tested_versions(("ray",), installed={"ray": version})


@pytest.mark.parametrize(
    ("package", "version"),
    [("ray", "2.61.0"), ("ray", "2.59.9"), ("ray", "3.0.0"), ("optuna", "5.0.0"), ("optuna", "5.2.0.dev0")],
)
def test_a_version_outside_the_range_is_one_line_naming_it(package, version):
    with pytest.raises(UsageError) as info:
        check_tested_versions((package,), installed={package: version})
    message = str(info.value)
    assert "\n" not in message
    assert f"{package} {version} is installed" in message
    assert f"{package}{pinned_range(package)}" in message and SKIP_ENV in message


def test_a_missing_package_is_one_line():
    with pytest.raises(UsageError, match=r"^optuna is not installed; .*optuna>=5"):
        check_tested_versions(("optuna",), installed={"optuna": None})


def test_the_escape_hatch(monkeypatch):
    monkeypatch.setenv(SKIP_ENV, "1")
    check_tested_versions(("ray",), installed={"ray": "9.0.0"})


@pytest.mark.parametrize(
    "command",
    [
        ("tune", "--space", "smoke", "--smoke"),
        ("replicate", "no-such-experiment", "--top", "1"),
        ("verify", "--checkpoint", "no-such-run", "--range", "3..99", "--address", "auto"),
    ],
    ids=lambda command: command[0],
)
def test_the_commands_refuse_before_anything_starts(monkeypatch, command):
    from collatz_ray.search import versions

    monkeypatch.setitem(versions.TESTED, "ray", ("1.0", "1.1"))  # the installed Ray is now untested
    # Refused before the search, the experiment or the checkpoint is even looked at.
    run_command(*command).one_error_line("ray 2.60", "ray>=1.0,<1.1", SKIP_ENV)


def test_a_local_verify_scan_needs_no_tested_ray(monkeypatch):
    from collatz_ray.search import versions

    monkeypatch.setitem(versions.TESTED, "ray", ("1.0", "1.1"))
    line = run_command("verify", "--checkpoint", "no-such-run", "--range", "3..99").one_error_line(
        "no-such-run"
    )
    assert SKIP_ENV not in line
