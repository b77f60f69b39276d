"""collatz-ray as users install it: a built wheel in a fresh venv, used from a directory
that is not the repository, and imports that stay light where nothing heavy is needed."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support.clitools import installed_env
from support.experiments import search_experiment, write_trial


def test_the_wheel_is_what_runs_and_it_ships_the_named_spaces(installed_python, tmp_path):
    code = (
        "import collatz_ray, collatz_ray.search.spaces as s; "
        "print(collatz_ray.__file__); print(s.SPACES_DIR); print(','.join(s.available_spaces()))"
    )
    out = subprocess.run(
        [str(installed_python), "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
        timeout=120,
        env=installed_env(),
    ).stdout.splitlines()
    venv = installed_python.parents[1]
    assert out[0].startswith(str(venv)), f"not the installed wheel: {out[0]}"
    assert out[1].startswith(str(venv)), f"spaces not from the wheel: {out[1]}"
    assert {"lookahead", "smoke", "full", "beta", "mining"} <= set(out[2].split(","))


def test_the_readme_search_ran_from_the_installed_wheel(smoke_experiment):
    stdout = (smoke_experiment.parent / "tune.out").read_text()
    assert "Search 'lookahead-smoke'" in stdout and "Best trial" in stdout


def _modules_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return set(proc.stdout.split())


@pytest.mark.parametrize(
    "statement",
    [
        "import collatz_ray",
        "import collatz_ray.results, collatz_ray.results.report, collatz_ray.results.formats, "
        "collatz_ray.results.export, collatz_ray.results.read, collatz_ray.results.importance",
        # --plot's modules: the trajectory view imports torch only when it draws.
        "import collatz_ray.results.plots, collatz_ray.results.trajectories",
        "import collatz_ray.results.__main__",
        "import collatz_ray.tune",
        "import collatz_ray.replicate",
        "from collatz_ray import TrainConfig, load_space, load_experiment",
    ],
)
def test_light_imports_load_neither_torch_nor_ray(statement):
    loaded = _modules_after(statement)
    assert loaded, "the import failed"
    assert not {"torch", "ray"} & loaded, sorted({"torch", "ray"} & loaded)


def test_a_broken_space_is_refused_before_torch_or_ray_is_imported(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("budget: {epochs: 10\n")
    code = (
        "import sys\nfrom collatz_ray import tune\ntry:\n"
        f"    tune.main(['--space', {str(broken)!r}])\n"
        "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules, 'ray' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["2", "False", "False"], proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "broken.yaml" in proc.stderr


def test_a_replication_is_planned_and_refused_before_torch_or_ray_is_imported(tmp_path):
    """Reading the source experiment and planning (--dry-run) load neither; nor does
    refusing a --top larger than its configurations."""
    source = search_experiment(tmp_path / "src")
    write_trial(
        source, "a1", params={"lookahead": 10, "target_type": "fixed", "mine_negatives": False}, violations=12
    )
    for top, status in (("1", "0"), ("2", "2")):
        code = (
            "import sys\nfrom collatz_ray import replicate\ntry:\n"
            f"    status = replicate.main([{str(source)!r}, '--top', {top!r}, '--seeds', '2', "
            f"'--storage', {str(tmp_path)!r}, '--dry-run'])\n"
            "except SystemExit as e:\n    status = e.code\n"
            "print(status, 'torch' in sys.modules, 'ray' in sys.modules)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert proc.stdout.split()[-3:] == [status, "False", "False"], proc.stdout + proc.stderr
