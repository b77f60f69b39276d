"""The cluster launcher configs in cluster/: Ray's own validation, offline, and the safe
defaults they promise (token auth, dashboard on 127.0.0.1, SSH not open to the world,
Ray pinned, the driver on an on-demand head without GPUs, no resource that no trial asks
for).

Validation is what `ray up` runs first: prepare_config (merge the provider's
defaults.yaml) then validate_config (ray-schema.json plus a few checks). Neither calls
the cloud for the aws and local providers; the `offline` fixture makes sure of it.
"""

import ast
import copy
import itertools
import json
import re
import shlex
import socket
import subprocess
import sys
from functools import partial
from pathlib import Path

import jsonschema
import pytest
import ray
import ray.autoscaler
import yaml
from ray.autoscaler._private import resource_demand_scheduler
from ray.autoscaler._private.node_provider_availability_tracker import (
    NodeAvailabilitySummary,
)
from ray.autoscaler._private.util import prepare_config, validate_config

from collatz_ray.search.resources import trial_actor_resources

CLUSTER_DIR = Path(__file__).resolve().parents[2] / "cluster"
CONFIGS = sorted(CLUSTER_DIR.glob("*.yaml"))
AWS_CONFIGS = [p for p in CONFIGS if yaml.safe_load(p.read_text())["provider"]["type"] == "aws"]
TOKEN_FILE = "~/.ray/auth_token"
# Resources Ray itself knows; anything else a node announces is a custom resource.
RAY_RESOURCES = {"CPU", "GPU", "memory", "object_store_memory"}


def ids(paths):
    return [p.name for p in paths]


def load(path):
    return yaml.safe_load(path.read_text())


def prepared(raw):
    """The config as `ray up` sees it: defaults merged, then validated."""
    config = prepare_config(raw)
    validate_config(config)
    return config


def strings(node):
    """Every string in a parsed YAML document, keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def start_commands(config):
    return config["head_start_ray_commands"] + config["worker_start_ray_commands"]


def bound_errors(config):
    """min_workers above max_workers within one node type: Ray's validator only
    compares the sum of min_workers with the global max_workers, so we check this."""
    return [
        name
        for name, node_type in config["available_node_types"].items()
        if node_type.get("min_workers", 0) > node_type.get("max_workers", config["max_workers"])
    ]


@pytest.fixture
def offline(monkeypatch):
    """Any connection, DNS lookup or import of the AWS SDK fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access while preparing/validating a cluster config")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for module in ("boto3", "botocore"):
        monkeypatch.setitem(sys.modules, module, None)  # `import boto3` now raises


def test_both_configs_are_present():
    # Guards the parametrized tests below against an empty glob.
    assert {"gpu.yaml", "local.yaml"} <= set(ids(CONFIGS))
    assert ids(AWS_CONFIGS) == ["gpu.yaml"]


@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_ray_validates_the_config_offline(path, offline):
    prepared(load(path))


@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_every_ray_start_has_token_auth_and_a_local_dashboard(path):
    config = prepared(load(path))
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any("ray start" in cmd for cmd in config[key]), key
    for cmd in start_commands(config):
        if "ray start" in cmd:
            # The variable must prefix the `ray start` itself to reach its environment.
            assert re.search(r"RAY_AUTH_MODE=token\s+\S*ray start", cmd), cmd
            assert "--dashboard-host=127.0.0.1" in cmd, cmd


@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_no_wildcard_address_anywhere(path):
    # Neither a 0.0.0.0 dashboard host nor a 0.0.0.0/0 ingress rule, in what we wrote
    # or in the provider defaults that prepare_config merged in.
    config = prepared(load(path))
    assert not [s for s in strings(config) if "0.0.0.0" in s]


@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_the_auth_token_file_is_mounted_on_every_node(path):
    # file_mounts reach every node: the head from this machine, workers from the head.
    assert prepared(load(path))["file_mounts"].get(TOKEN_FILE) == TOKEN_FILE


@pytest.mark.parametrize("path", AWS_CONFIGS, ids=ids(AWS_CONFIGS))
def test_every_aws_node_type_names_its_security_group(path):
    # Without SecurityGroupIds the launcher creates a group that opens SSH to the world
    # (next test); with them it touches no security group.
    for name, node_type in prepared(load(path))["available_node_types"].items():
        assert node_type["node_config"].get("SecurityGroupIds"), name


def ray_default_inbound_rules(extra_rules):
    """Ray 2.60's rules for a security group the AWS launcher creates itself.

    Its module imports boto3 at the top, which is not installed here, so this runs only
    the three pure rule-building functions from the installed source."""
    source = Path(ray.autoscaler.__file__).parent / "_private" / "aws" / "config.py"
    wanted = {
        "_create_default_inbound_rules",
        "_create_default_intracluster_inbound_rules",
        "_create_default_ssh_inbound_rules",
    }
    functions = [
        node
        for node in ast.parse(source.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name in wanted
    ]
    assert {f.name for f in functions} == wanted, "Ray's rule builders moved"
    namespace = {"itertools": itertools}
    exec(compile(ast.Module(functions, type_ignores=[]), str(source), "exec"), namespace)
    return namespace["_create_default_inbound_rules"](["sg-0"], extra_rules)


def test_why_provider_security_group_cannot_restrict_ssh():
    ours = {
        "FromPort": 22,
        "ToPort": 22,
        "IpProtocol": "tcp",
        "IpRanges": [{"CidrIp": "203.0.113.0/24"}],
    }
    rules = ray_default_inbound_rules([ours])
    ssh_sources = [r["CidrIp"] for rule in rules if rule.get("FromPort") == 22 for r in rule["IpRanges"]]
    # If this fails, Ray stopped adding SSH from 0.0.0.0/0 and provider.security_group
    # with IpPermissions would be enough; cluster/gpu.yaml's comment should follow.
    assert "0.0.0.0/0" in ssh_sources and "203.0.113.0/24" in ssh_sources


@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_ray_is_pinned_to_this_version_on_every_node(path):
    # The nodes must run the Ray that runs `ray up` here: 2.60.0 in this project.
    config = prepared(load(path))
    for key in ("head_setup_commands", "worker_setup_commands"):  # setup_commands merged in
        requirements = [
            token
            for cmd in config[key]
            if "pip install" in cmd
            for token in shlex.split(cmd)
            if re.fullmatch(r"ray(\[[^\]]*\])?([=<>!~].*)?", token)
        ]
        # Exactly one install of Ray, at the version this machine runs `ray up` with,
        # and no nightly wheel (the AWS defaults' choice).
        assert len(requirements) == 1 and requirements[0].endswith("==" + ray.__version__), requirements
        assert not [cmd for cmd in config[key] if ".whl" in cmd or "ray-wheels" in cmd]


@pytest.mark.parametrize("path", AWS_CONFIGS, ids=ids(AWS_CONFIGS))
def test_the_head_is_on_demand_without_gpus_and_spot_is_opt_in(path):
    config = prepared(load(path))
    node_types = config["available_node_types"]
    head = node_types[config["head_node_type"]]
    # The driver runs on the head, which is never reclaimed; GPU trials never land there.
    assert head["resources"].get("GPU") == 0
    assert "InstanceMarketOptions" not in head["node_config"]
    spot = [
        name
        for name, t in node_types.items()
        if t["node_config"].get("InstanceMarketOptions", {}).get("MarketType") == "spot"
    ]
    assert spot, "gpu.yaml ships a spot type"
    # Off until raised: a reclaimed spot node costs its trials the work since their last
    # checkpoint, which the user opts into.
    for name in spot:
        assert node_types[name]["max_workers"] == 0, name


def custom_resources(resources):
    return sorted(k for k in resources if k not in RAY_RESOURCES and not k.startswith("accelerator_type:"))


def announced_custom_resources(config):
    """Custom resources the nodes would announce: in a node type's resources (the
    launcher's clouds) or on a `ray start` line (the local provider ignores node types)."""
    found = [
        f"{name}: {resource}"
        for name, node_type in config["available_node_types"].items()
        for resource in custom_resources(node_type.get("resources", {}))
    ]
    return found + [cmd for cmd in start_commands(config) if "--resources" in cmd]


@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_no_node_announces_a_resource_that_no_trial_asks_for(path):
    # A trial asks for CPUs and GPUs only (one process holds the whole trial), so a custom
    # resource on any node would be dead configuration.
    assert custom_resources(trial_actor_resources(cpus_per_trial=1, gpus_per_trial=1)) == []
    assert announced_custom_resources(prepared(load(path))) == []


@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_no_node_type_has_min_workers_above_max_workers(path):
    assert bound_errors(prepared(load(path))) == []


# Resources the head's autoscaler fills in from EC2's instance-type data at run time
# (aws/node_provider.py fillout_available_node_types_resources): vCPUs, GPUs, 70% of
# memory for workers, and accelerator_type:<GPU name>.
EC2_FACTS = {
    "m5.xlarge": (4, 0, None),
    "g4dn.xlarge": (4, 1, "T4"),
    "g6.xlarge": (4, 1, "L4"),
    "g5.xlarge": (4, 1, "A10G"),
}


def filled_node_types(config):
    node_types = copy.deepcopy(config["available_node_types"])
    for name, node_type in node_types.items():
        cpus, gpus, accelerator = EC2_FACTS[node_type["node_config"]["InstanceType"]]
        resources = {"CPU": cpus}
        if name != config["head_node_type"]:
            resources["memory"] = int(16 * 2**30 * 0.7)
        if gpus:
            resources.update({"GPU": gpus, f"accelerator_type:{accelerator}": 1})
        resources.update(node_type["resources"])
        node_type["resources"] = resources
    return node_types


def nodes_launched_for(config, demands):
    """The worker nodes the autoscaler launches for `demands` on a cluster of the head
    alone, idle: as in its get_nodes_to_launch, what fits the head's free resources is
    placed there, and only the rest asks for new nodes."""
    scorer = partial(
        resource_demand_scheduler._resource_based_utilization_scorer,
        node_availability_summary=NodeAvailabilitySummary({}),
    )
    node_types = filled_node_types(config)
    unfulfilled, _ = resource_demand_scheduler.get_bin_pack_residual(
        [node_types[config["head_node_type"]]["resources"]], demands
    )
    launched, _unmet = resource_demand_scheduler.get_nodes_for(
        node_types,
        {config["head_node_type"]: 1},
        config["head_node_type"],
        config["max_workers"],
        unfulfilled,
        lambda resources, demand, _node_type: scorer(resources, demand),
    )
    return dict(launched)


def test_autoscaler_choices_match_gpu_yaml_comments():
    config = prepared(load(CLUSTER_DIR / "gpu.yaml"))
    node_types = config["available_node_types"]
    # What a trial asks for: its CPUs and GPUs, held by the one process that trains.
    gpu_trial = trial_actor_resources(cpus_per_trial=1, gpus_per_trial=1)
    cpu_trial = trial_actor_resources(cpus_per_trial=1, gpus_per_trial=0)
    assert gpu_trial == {"CPU": 1, "GPU": 1}
    # The head (GPU: 0) holds CPU-only trials on its 4 CPUs and launches nothing for
    # them, but never a GPU trial, although its CPUs are free.
    assert nodes_launched_for(config, [cpu_trial] * 4) == {}
    assert nodes_launched_for(config, [gpu_trial]) == {"gpu-t4": 1}
    # Plain GPU demand: T4 first (spot is off by default); max_workers: 0 rules a type
    # out, and the next name in reverse order follows.
    assert nodes_launched_for(config, [gpu_trial] * 2) == {"gpu-t4": 2}
    node_types["gpu-t4"]["max_workers"] = 0
    assert nodes_launched_for(config, [gpu_trial]) == {"gpu-l4": 1}
    node_types["gpu-l4"]["max_workers"] = 0
    assert nodes_launched_for(config, [gpu_trial]) == {"gpu-a10g": 1}
    # Spot, once opted in, is preferred for plain GPU demand.
    node_types["gpu-t4-spot"]["max_workers"] = 4
    assert nodes_launched_for(config, [gpu_trial]) == {"gpu-t4-spot": 1}
    # A trial can pick its GPU through the accelerator_type resource.
    assert nodes_launched_for(config, [{**gpu_trial, "accelerator_type:L4": 0.01}]) == {}  # l4 off
    assert nodes_launched_for(config, [{**gpu_trial, "accelerator_type:A10G": 0.01}]) == {"gpu-a10g": 1}


def test_the_placeholder_guard_stops_an_unfilled_head_and_not_a_filled_one(tmp_path):
    config = prepared(load(CLUSTER_DIR / "gpu.yaml"))
    guard = next(c for c in config["head_setup_commands"] if "ray_bootstrap_config.yaml" in c)
    bootstrap = tmp_path / "ray_bootstrap_config.yaml"

    def run_guard(text):
        # The launcher copies the config to the head as JSON at this path.
        bootstrap.write_text(text)
        return subprocess.run(["bash", "-c", guard], env={"HOME": str(tmp_path)}, capture_output=True)

    assert run_guard(json.dumps(config)).returncode == 1
    # Filled in: the guard's own text, also in the copy, must not trigger it.
    assert run_guard(json.dumps(config).replace("REPLACE_ME", "filled")).returncode == 0
    bootstrap.unlink()
    assert subprocess.run(["bash", "-c", guard], env={"HOME": str(tmp_path)}).returncode == 0


# Negative tests: the validation above can fail.


@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_a_typo_in_a_key_fails_validation(path, offline):
    raw = load(path)
    raw["idle_timeout_minute"] = raw.pop("idle_timeout_minutes")
    with pytest.raises(jsonschema.ValidationError, match="idle_timeout_minute"):
        prepared(raw)


def test_a_typo_inside_a_node_type_fails_validation(offline):
    raw = load(CLUSTER_DIR / "gpu.yaml")
    raw["available_node_types"]["gpu-t4"]["max_worker"] = raw["available_node_types"]["gpu-t4"].pop(
        "max_workers"
    )
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        prepared(raw)


def test_min_workers_above_global_max_workers_fails_validation(offline):
    raw = load(CLUSTER_DIR / "gpu.yaml")
    raw["available_node_types"]["gpu-t4"]["min_workers"] = raw["max_workers"] + 1
    with pytest.raises(ValueError, match="max_workers"):
        prepared(raw)


def test_min_above_max_within_a_type_passes_ray_so_we_check_it(offline):
    raw = load(CLUSTER_DIR / "gpu.yaml")
    raw["available_node_types"]["gpu-l4"].update(min_workers=2, max_workers=1)
    assert bound_errors(prepared(raw)) == ["gpu-l4"]


def test_a_custom_resource_on_a_node_is_caught():
    raw = load(CLUSTER_DIR / "gpu.yaml")
    raw["available_node_types"]["gpu-t4-spot"]["resources"] = {"spot_ok": 1}
    assert announced_custom_resources(prepared(raw)) == ["gpu-t4-spot: spot_ok"]
    raw = load(CLUSTER_DIR / "local.yaml")
    raw["head_start_ray_commands"][-1] += """ --resources='{"spot_ok": 1}'"""
    assert len(announced_custom_resources(prepared(raw))) == 1
