"""A real two-node Ray cluster on this machine: a head with the `tune_driver` resource
and a worker node with its own CPUs and a custom resource, as cluster/*.yaml lay out.
A smoke search joins it through --address; its trials must run on both nodes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from collatz_ray.errors import UsageError
from collatz_ray.storage import check_storage
from raycluster import ENV, start_head


def test_local_storage_is_refused_on_a_multi_node_cluster(tmp_path):
    with pytest.raises(UsageError, match="2-node cluster"):
        check_storage(str(tmp_path), creating=False, nodes=2)
    check_storage(str(tmp_path), creating=False, nodes=2, declared_shared=True)
    check_storage("s3://bucket/prefix", creating=False, nodes=2)
    check_storage(str(tmp_path), creating=False, nodes=1)


def test_smoke_search_runs_on_both_nodes_of_a_two_node_cluster(tmp_path, eval_csv):
    cluster = start_head(num_cpus=1, resources={"tune_driver": 1})
    try:
        cluster.add_node(num_cpus=1, resources={"spot_worker": 1})
        common = ["--space", "smoke", "--address", "auto", "--storage", str(tmp_path),
                  "--eval-csv", str(eval_csv), "--num-samples", "2", "--max-concurrent", "2"]
        env = {**ENV, "RAY_ADDRESS": cluster.address}

        refused = subprocess.run([sys.executable, "-m", "collatz_ray.tune", *common, "--name", "refused"],
                                 capture_output=True, text=True, timeout=300, env=env)
        assert refused.returncode == 2
        assert "2-node cluster" in refused.stderr and "Traceback" not in refused.stderr

        proc = subprocess.run([sys.executable, "-m", "collatz_ray.tune", *common, "--name", "two",
                               "--shared-storage"],
                              capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        nodes = set()
        for result in (tmp_path / "two").glob("collatz_trial_*/result.json"):
            reports = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
            assert reports
            nodes.update(r["node_id"] for r in reports)
        assert len(nodes) == 2, f"trials ran on {len(nodes)} node(s): {nodes}"
    finally:
        cluster.stop()
