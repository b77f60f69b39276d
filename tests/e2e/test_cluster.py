"""A real two-node Ray cluster on this machine: a head with the `tune_driver` resource
and a worker node with its own CPUs and a custom resource, as cluster/*.yaml lay out.
A smoke search joins it through --address; its Train workers must run on the worker node."""

from __future__ import annotations

import json
import subprocess
import sys

from raycluster import ENV, start_head


def test_trials_train_on_another_node_than_the_head(tmp_path, eval_csv):
    """Head: 1 CPU and the `tune_driver` resource that keeps trial actors there. A trial of
    1.05 CPUs has a Train worker of 0.95 CPU, which never fits beside an actor on the
    head, so every worker must be placed on the second node (2 CPUs: both at once)."""
    cluster = start_head(num_cpus=1, resources={"tune_driver": 1})
    try:
        cluster.add_node(num_cpus=2, resources={"spot_worker": 1})
        common = ["--space", "smoke", "--address", "auto", "--storage", str(tmp_path),
                  "--eval-csv", str(eval_csv), "--num-samples", "2", "--cpus-per-trial", "1.05"]
        env = {**ENV, "RAY_ADDRESS": cluster.address}

        refused = subprocess.run([sys.executable, "-m", "collatz_ray.tune", *common, "--name", "refused"],
                                 capture_output=True, text=True, timeout=300, env=env)
        assert refused.returncode == 2
        assert "2-node cluster" in refused.stderr and "Traceback" not in refused.stderr

        proc = subprocess.run([sys.executable, "-m", "collatz_ray.tune", *common, "--name", "two",
                               "--shared-storage"],
                              capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "2 at once" in proc.stdout  # 3 CPUs in all fit two trials of 1.05
        assert "Started a local Ray instance" not in proc.stdout + proc.stderr
        worker_nodes = set()
        for result in (tmp_path / "two").glob("collatz_trial_*/result.json"):
            reports = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
            assert reports
            worker_nodes.update(r["node_id"] for r in reports)
        assert worker_nodes == cluster.node_ids_with("spot_worker"), worker_nodes
    finally:
        cluster.stop()
