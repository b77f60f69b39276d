"""A real two-node Ray cluster on this machine, started the way docs/cluster.md says
("Without the launcher"): `ray get-auth-token --generate`, `RAY_AUTH_MODE=token ray start
--head`, a second node joining
with `RAY_AUTH_MODE=token ray start --address`, and a search with `--address auto`. The
head announces no custom resource, as in cluster/*.yaml. Before that, the
mistake the docs warn about: a plain `ray start --head` is refused in one line."""

from __future__ import annotations

import os
import subprocess

from support.raycluster import RAY, LocalCluster, free_port
from support.searches import TUNE, read_reports, trial_dirs


def _user_env(home) -> dict[str, str]:
    """A user's shell: a home with no Ray token yet, and no RAY_AUTH_MODE exported.
    (`--address auto` then reads RAY_ADDRESS, which the searches below set: other tests'
    Rays on this machine would make "the latest cluster" ambiguous.)"""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    env["HOME"] = str(home)
    return env


def test_a_cluster_without_token_auth_is_refused_in_one_line(tmp_path, eval_csv):
    env = _user_env(tmp_path / "home")
    cluster = LocalCluster(port=free_port(), env=env)
    try:
        cluster.start_head(num_cpus=1)  # ray start --head
        proc = subprocess.run(
            [
                *TUNE,
                "--space",
                "smoke",
                "--address",
                "auto",
                "--storage",
                str(tmp_path / "r"),
                "--eval-csv",
                str(eval_csv),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**env, "RAY_ADDRESS": cluster.address},
        )
    finally:
        cluster.stop()
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "RAY_AUTH_MODE=token ray start --head" in lines[0], proc.stderr[-3000:]
    assert "ray get-auth-token --generate" in lines[0]


def test_the_documented_local_cluster_runs_trials_on_the_second_node(tmp_path, eval_csv):
    """A trial of 1.05 CPUs never fits on the 1-CPU head, so every trial must be placed
    on the second node; the second trial waits for the first one's CPUs there."""
    env = {**_user_env(tmp_path / "home"), "RAY_AUTH_MODE": "token"}
    subprocess.run(
        [RAY, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=120
    )
    cluster = LocalCluster(port=free_port(), env=env)
    try:
        cluster.start_head(num_cpus=1)  # RAY_AUTH_MODE=token ray start --head
        cluster.add_node(num_cpus=2, resources={"spot_worker": 1})  # ... ray start --address HEAD
        search_env = {**_user_env(tmp_path / "home"), "RAY_ADDRESS": cluster.address}
        common = [
            "--space",
            "smoke",
            "--address",
            "auto",
            "--storage",
            str(tmp_path),
            "--eval-csv",
            str(eval_csv),
            "--num-samples",
            "2",
            "--cpus-per-trial",
            "1.05",
        ]

        refused = subprocess.run(
            [*TUNE, *common, "--name", "refused"], capture_output=True, text=True, timeout=300, env=search_env
        )
        assert refused.returncode == 2
        assert "2-node cluster" in refused.stderr and "Traceback" not in refused.stderr

        proc = subprocess.run(
            [*TUNE, *common, "--name", "two", "--shared-storage"],
            capture_output=True,
            text=True,
            timeout=600,
            env=search_env,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "2 at once" in proc.stdout  # 3 CPUs in all fit two trials of 1.05
        assert "Started a local Ray instance" not in proc.stdout + proc.stderr
        worker_nodes = set()
        for trial in trial_dirs(tmp_path / "two").values():
            reports = read_reports(trial / "result.json")
            assert reports
            worker_nodes.update(r["node_id"] for r in reports)
        assert worker_nodes == cluster.node_ids_with("spot_worker"), worker_nodes
    finally:
        cluster.stop()
