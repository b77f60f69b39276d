"""The KubeRay deployment in cluster/k8s/: the image's Dockerfile and the RayCluster and
RayJob manifests, checked statically (no Docker, no Kubernetes, no network).

Each rule is a function that returns the problems it finds in parsed files (an empty list
when the files keep it). The positive tests run every rule on the shipped files; the
negative tests run the same rule on a mutated copy and expect it to complain, so no rule
passes by finding nothing to look at.

The rules, in one place:

- Kinds and field names: ray.io/v1 RayCluster and RayJob; every key at the KubeRay levels
  (RayJob spec, RayCluster spec, head and worker groups, autoscaler and auth options) is a
  field of KubeRay 1.6's CRDs, every pod and container key one of Kubernetes', and the
  fields KubeRay requires are there.
- One image: every container runs the image named on the Dockerfile's `# Image:` line,
  whose tag spells pyproject's version and the Dockerfile's Ray, Python and CUDA.
- Versions: the Dockerfile's Ray is the Ray these tests run (the launcher configs pin the
  same) and within pyproject's range, and it is every manifest's rayVersion; its Python
  satisfies requires-python; its torch range is pyproject's, from the CUDA index that
  matches the base image's CUDA; the package is installed with `pip install .`, never
  editable; the image runs as a numeric non-root user and carries no secret.
- Token auth: authOptions {mode: token, secretName} on every cluster, and every
  container we define has RAY_AUTH_MODE=token and RAY_AUTH_TOKEN from that Secret's
  auth_token key; no literal token and no Secret object in any file.
- Not exposed: no Service of type LoadBalancer or NodePort (head serviceType included),
  no Ingress, no hostPort or hostNetwork.
- Dashboard host: always set explicitly (KubeRay's default is 0.0.0.0). 127.0.0.1 is
  always allowed; 0.0.0.0 only where the head's serviceType is explicitly ClusterIP and
  nothing above exposes the cluster. raycluster.yaml uses 127.0.0.1; rayjob.yaml needs
  0.0.0.0 because the operator and the submitter reach the dashboard over the pod network.
- rayStartParams are options `ray start` accepts, written as KubeRay writes them, and
  the resources JSON parses the way KubeRay parses it.
- Placement: the head has num-gpus 0, so trials (which ask for a GPU) run on the GPU
  pods, and no group announces a custom resource, since a trial asks for CPUs and GPUs
  only; autoscaling on, with minReplicas <= replicas <= maxReplicas and CPU/memory
  requests and limits everywhere.
- The RayJob's entrypoint is a `python -m collatz_ray.tune` command whose every flag is
  one of parser()'s (spelled out, not abbreviated), whose space is in search_spaces/, and
  which joins the cluster (--address auto) with S3 storage; its GPU and concurrency fit
  the worker group's bounds.
- S3 credentials come from the service accounts' IRSA annotation, never from keys in
  the environment.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path

import pytest
import ray
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from collatz_ray.errors import UsageError
from collatz_ray.tune import parser as tune_parser

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "cluster" / "k8s"
DOCKERFILE = K8S / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
DOC = REPO / "docs" / "kubernetes.md"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

SECRET_NAME = "collatz-ray-auth"
SECRET_KEY = "auth_token"
EXPOSING_SERVICE_TYPES = {"LoadBalancer", "NodePort"}
# Resources Ray itself knows (a group's `resources` may set them); anything else is custom.
RAY_RESOURCES = {"CPU", "GPU", "memory", "object_store_memory"}
EXPOSING_KINDS = {"Ingress", "Gateway", "HTTPRoute", "GRPCRoute", "TCPRoute", "Route"}
# Names of variables that would hold a credential; none may carry a literal value.
SECRET_NAMES = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|ACCESS_KEY|CREDENTIAL|PRIVATE", re.I)
# Paths of credential files that must never be copied into the image.
CREDENTIAL_FILES = re.compile(
    r"(^|/)(\.ray|\.aws|\.ssh|\.kube|\.docker|\.env)(/|$)|auth_token|\.pem$|id_rsa|credentials"
)
STATIC_AWS_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"

# Field names of KubeRay 1.6.0's ray.io/v1 CRDs (the oldest KubeRay with
# authOptions.secretName), at the levels these manifests write.
RAYJOB_SPEC_FIELDS = {
    "activeDeadlineSeconds",
    "backoffLimit",
    "clusterSelector",
    "deletionStrategy",
    "entrypoint",
    "entrypointNumCpus",
    "entrypointNumGpus",
    "entrypointResources",
    "jobId",
    "managedBy",
    "metadata",
    "preRunningDeadlineSeconds",
    "rayClusterSpec",
    "runtimeEnvYAML",
    "shutdownAfterJobFinishes",
    "submissionMode",
    "submitterConfig",
    "submitterPodTemplate",
    "suspend",
    "ttlSecondsAfterFinished",
}
RAYCLUSTER_SPEC_FIELDS = {
    "authOptions",
    "autoscalerOptions",
    "enableInTreeAutoscaling",
    "gcsFaultToleranceOptions",
    "headGroupSpec",
    "headServiceAnnotations",
    "managedBy",
    "rayVersion",
    "suspend",
    "upgradeStrategy",
    "workerGroupSpecs",
}
HEAD_GROUP_FIELDS = {
    "enableIngress",
    "headService",
    "labels",
    "rayStartParams",
    "resources",
    "serviceType",
    "template",
}
WORKER_GROUP_FIELDS = {
    "groupName",
    "idleTimeoutSeconds",
    "labels",
    "maxReplicas",
    "minReplicas",
    "numOfHosts",
    "rayStartParams",
    "replicas",
    "resources",
    "scaleStrategy",
    "suspend",
    "template",
}
AUTOSCALER_FIELDS = {
    "env",
    "envFrom",
    "idleTimeoutSeconds",
    "image",
    "imagePullPolicy",
    "resources",
    "securityContext",
    "upscalingMode",
    "version",
    "volumeMounts",
}
AUTH_FIELDS = {"enableK8sTokenAuth", "mode", "secretName"}
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "SidecarMode"}
# Kubernetes core/v1 (the keys of a pod template, a pod spec and a container).
POD_TEMPLATE_FIELDS = {"metadata", "spec"}
POD_SPEC_FIELDS = {
    "activeDeadlineSeconds",
    "affinity",
    "automountServiceAccountToken",
    "containers",
    "dnsConfig",
    "dnsPolicy",
    "enableServiceLinks",
    "ephemeralContainers",
    "hostAliases",
    "hostIPC",
    "hostNetwork",
    "hostPID",
    "hostUsers",
    "hostname",
    "imagePullSecrets",
    "initContainers",
    "nodeName",
    "nodeSelector",
    "os",
    "overhead",
    "preemptionPolicy",
    "priority",
    "priorityClassName",
    "readinessGates",
    "resourceClaims",
    "resources",
    "restartPolicy",
    "runtimeClassName",
    "schedulerName",
    "schedulingGates",
    "securityContext",
    "serviceAccountName",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "subdomain",
    "terminationGracePeriodSeconds",
    "tolerations",
    "topologySpreadConstraints",
    "volumes",
}
CONTAINER_FIELDS = {
    "args",
    "command",
    "env",
    "envFrom",
    "image",
    "imagePullPolicy",
    "lifecycle",
    "livenessProbe",
    "name",
    "ports",
    "readinessProbe",
    "resizePolicy",
    "resources",
    "restartPolicy",
    "securityContext",
    "startupProbe",
    "stdin",
    "stdinOnce",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "tty",
    "volumeDevices",
    "volumeMounts",
    "workingDir",
}
API_VERSIONS = {"RayCluster": "ray.io/v1", "RayJob": "ray.io/v1", "Namespace": "v1", "ServiceAccount": "v1"}


# -- reading the files -----------------------------------------------------------------------


def load(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d is not None]


def manifests() -> dict[str, list[dict]]:
    return {p.name: load(p.name) for p in sorted(K8S.glob("*.yaml"))}


def the(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def cluster_specs(doc: dict) -> list[tuple[str, dict]]:
    """(where, RayCluster spec) in a RayCluster or in a RayJob's rayClusterSpec."""
    spec = doc.get("spec") or {}
    if doc.get("kind") == "RayCluster":
        return [("RayCluster.spec", spec)]
    if doc.get("kind") == "RayJob" and isinstance(spec.get("rayClusterSpec"), dict):
        return [("RayJob.spec.rayClusterSpec", spec["rayClusterSpec"])]
    return []


def pod_templates(doc: dict) -> list[tuple[str, dict]]:
    """(where, pod template) of every pod this document makes us write."""
    found = []
    for where, spec in cluster_specs(doc):
        found.append((f"{where}.headGroupSpec", (spec.get("headGroupSpec") or {}).get("template") or {}))
        for group in spec.get("workerGroupSpecs") or []:
            found.append((f"{where}.workerGroupSpecs[{group.get('groupName')}]", group.get("template") or {}))
    if doc.get("kind") == "RayJob" and (doc.get("spec") or {}).get("submitterPodTemplate"):
        found.append(("RayJob.spec.submitterPodTemplate", doc["spec"]["submitterPodTemplate"]))
    return found


def containers(doc: dict) -> list[tuple[str, dict]]:
    found = []
    for where, template in pod_templates(doc):
        pod = template.get("spec") or {}
        for key in ("initContainers", "containers"):
            for c in pod.get(key) or []:
                found.append((f"{where}.{key}[{c.get('name')}]", c))
    return found


def env_of(container: dict) -> dict[str, list[dict]]:
    by_name: dict[str, list[dict]] = {}
    for entry in container.get("env") or []:
        by_name.setdefault(entry.get("name"), []).append(entry)
    return by_name


def nodes(node, path=""):
    """Every (path, dict) in a parsed document."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from nodes(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from nodes(item, f"{path}[{i}]")


def ray_resources(params: dict) -> dict:
    """rayStartParams' resources, a JSON object in quotes, parsed as KubeRay does."""
    text = (params or {}).get("resources")
    return json.loads(text.strip("'\"` ")) if text else {}


def entrypoint_argv(rayjob: dict) -> list[str]:
    return shlex.split((rayjob.get("spec") or {}).get("entrypoint") or "")


# -- the Dockerfile ------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    found, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        if whole:
            name, _, args = whole.partition(" ")
            found.append((name.upper(), args.strip()))
    return found


def build_args(steps: list[tuple[str, str]]) -> dict[str, str]:
    """ARG defaults, each expanded with those declared before it."""
    values: dict[str, str] = {}
    for name, args in steps:
        if name == "ARG" and "=" in args:
            key, _, default = args.partition("=")
            values[key.strip()] = expand(default.strip().strip('"'), values)
    return values


def expand(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


def image_line(text: str) -> str:
    found = re.findall(r"^# Image: (\S+)$", text, re.M)
    assert len(found) == 1, f"expected one '# Image:' line in the Dockerfile, found {found}"
    return found[0]


def shell_commands(run: str) -> list[list[str]]:
    """The simple commands of a RUN line, split at && || ; | (outside quotes)."""
    lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, current = [], []
    for token in lexer:
        if token in ("&&", "||", ";", "|", "&"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    return [c for c in commands + [current] if c]


PIP_VALUE_OPTIONS = {
    "-i",
    "--index-url",
    "--extra-index-url",
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-f",
    "--find-links",
    "-t",
    "--target",
    "--prefix",
    "--root",
}


def pip_installs(text: str) -> list[dict]:
    """Each `pip install` of the Dockerfile: its WORKDIR, options and requirements, with
    the build args expanded."""
    steps = instructions(text)
    values = build_args(steps)
    found, workdir = [], "/"
    for name, args in steps:
        if name == "WORKDIR":
            workdir = expand(args, values)
        if name != "RUN":
            continue
        for argv in shell_commands(expand(args, values)):
            words = [w for w in argv if w not in ("-m",)]
            if "install" not in words or not {"pip", "pip3"} & set(w.rsplit("/", 1)[-1] for w in words):
                continue
            rest = words[words.index("install") + 1 :]
            options, targets, i = {}, [], 0
            while i < len(rest):
                word = rest[i]
                if word in PIP_VALUE_OPTIONS:
                    options[word] = rest[i + 1]
                    i += 2
                    continue
                if word.startswith("-"):
                    options[word.split("=", 1)[0]] = word.split("=", 1)[1] if "=" in word else True
                else:
                    targets.append(word)
                i += 1
            found.append({"workdir": workdir, "options": options, "targets": targets})
    return found


def copies(text: str) -> list[dict]:
    """Each COPY/ADD: its sources (relative to the build context) and WORKDIR."""
    steps = instructions(text)
    values = build_args(steps)
    found, workdir = [], "/"
    for name, args in steps:
        if name == "WORKDIR":
            workdir = expand(args, values)
        if name in ("COPY", "ADD"):
            words = [w for w in shlex.split(expand(args, values)) if not w.startswith("--")]
            found.append({"kind": name, "sources": words[:-1], "dest": words[-1], "workdir": workdir})
    return found


def requirement(targets: list[str], name: str) -> Requirement | None:
    for target in targets:
        try:
            req = Requirement(target)
        except Exception:
            continue
        if req.name.lower() == name:
            return req
    return None


def pyproject_requirement(name: str) -> Requirement:
    return next(r for r in map(Requirement, PYPROJECT["project"]["dependencies"]) if r.name == name)


def package_paths() -> set[str]:
    """What `pip install .` reads: pyproject.toml, the readme, each package's top folder."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    mapped = setuptools.get("package-dir", {})
    tops = {mapped.get(p, p.replace(".", "/")).split("/")[0] for p in setuptools["packages"]}
    return {"pyproject.toml", PYPROJECT["project"]["readme"], *tops}


def dockerfile_problems(text: str, ignore_text: str) -> list[str]:
    """Non-editable install of the copied checkout, torch and Ray as pyproject says, a
    numeric non-root user, no secret, and a context that holds only what is copied."""
    problems = []
    steps = instructions(text)
    values = build_args(steps)
    installs = pip_installs(text)
    copied = copies(text)

    # The package: `pip install .` in the directory that got pyproject.toml.
    for install in installs:
        if {"-e", "--editable"} & set(install["options"]):
            problems.append(f"editable install: {install}")
    dot = [i for i in installs if "." in i["targets"]]
    if not dot:
        problems.append("no `pip install .` of the copied checkout")
    for install in dot:
        here = [c for c in copied if c["workdir"] == install["workdir"] and "pyproject.toml" in c["sources"]]
        if not here:
            problems.append(f"`pip install .` in {install['workdir']}, where no pyproject.toml was copied")
    sources = {s.rstrip("/") for c in copied for s in c["sources"]}
    if sources != package_paths():
        problems.append(
            f"COPY sources {sorted(sources)} != what pip install . needs {sorted(package_paths())}"
        )

    # torch: pyproject's range, a CUDA build matching the base image's CUDA.
    torch_installs = [(i, requirement(i["targets"], "torch")) for i in installs]
    torch_installs = [(i, r) for i, r in torch_installs if r is not None]
    if not torch_installs:
        problems.append("torch is not installed explicitly")
    for install, req in torch_installs:
        if req.specifier != pyproject_requirement("torch").specifier:
            problems.append(
                f"torch {req.specifier} != pyproject's {pyproject_requirement('torch').specifier}"
            )
        index = install["options"].get("--index-url") or install["options"].get("-i") or ""
        cuda = re.escape(values.get("CUDA_TAG", "?"))
        if not re.fullmatch(rf"https://download\.pytorch\.org/whl/{cuda}", index):
            problems.append(f"torch from {index!r}, not PyTorch's index for {values.get('CUDA_TAG')}")

    # Ray: pinned at the base image's version, which is this project's Ray.
    ray_pins = [requirement(i["targets"], "ray") for i in installs]
    ray_pins = [r for r in ray_pins if r is not None]
    wanted_extras = pyproject_requirement("ray").extras
    if [str(r.specifier) for r in ray_pins] != [f"=={values.get('RAY_VERSION')}"]:
        problems.append(f"Ray is not pinned once to the base image's {values.get('RAY_VERSION')}: {ray_pins}")
    if any(not wanted_extras <= r.extras for r in ray_pins):
        problems.append(f"Ray installed without pyproject's extras {sorted(wanted_extras)}")
    base = [expand(args, values) for name, args in steps if name == "FROM"]
    want_base = (
        f"rayproject/ray:{values.get('RAY_VERSION')}-{values.get('PYTHON_TAG')}-{values.get('CUDA_TAG')}"
    )
    if base != [want_base]:
        problems.append(f"base image {base} != {want_base}")

    # The user: numeric (so runAsNonRoot can check it) and not root.
    users = [args for name, args in steps if name == "USER"]
    uid = users[-1].split(":")[0] if users else "0"
    if not uid.isdigit() or int(uid) == 0:
        who = users[-1] if users else "root (no USER)"
        problems.append(f"the image runs as {who}, not a numeric non-root uid")

    # No secrets: no credential variables, no credential files.
    for name, args in steps:
        if name in ("ENV", "ARG"):
            key = re.split(r"[=\s]", args, maxsplit=1)[0]
            if SECRET_NAMES.search(key):
                problems.append(f"{name} {key} would bake a credential into the image")
    for c in copied:
        for source in c["sources"]:
            if CREDENTIAL_FILES.search(source):
                problems.append(f"{c['kind']} {source} copies a credential into the image")
            if "://" in source:
                problems.append(f"{c['kind']} {source} fetches from the network")

    # The build context: everything ignored but what is copied.
    patterns = [s.strip() for s in ignore_text.splitlines() if s.strip() and not s.strip().startswith("#")]
    if not patterns or patterns[0] not in ("*", "**"):
        problems.append(".dockerignore does not start by leaving everything out")
    kept = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    if kept != sources:
        problems.append(f".dockerignore keeps {sorted(kept)}, the Dockerfile copies {sorted(sources)}")
    return problems


def image_problems(docs_by_file: dict[str, list[dict]], image: str) -> list[str]:
    problems, seen = [], 0
    for name, docs in docs_by_file.items():
        for doc in docs:
            for where, c in containers(doc):
                seen += 1
                if c.get("image") != image:
                    problems.append(f"{name} {where}: image {c.get('image')!r} != {image!r}")
            for where, spec in cluster_specs(doc):
                extra = (spec.get("autoscalerOptions") or {}).get("image")
                if extra is not None and extra != image:
                    problems.append(f"{name} {where}.autoscalerOptions: image {extra!r} != {image!r}")
    if not seen:
        problems.append("no container found")
    return problems


# -- the manifests ---------------------------------------------------------------------------


def unknown(where: str, mapping: dict, allowed: set[str]) -> list[str]:
    return [f"{where}: unknown field {k!r}" for k in sorted(set(mapping or {}) - allowed)]


def field_problems(doc: dict) -> list[str]:
    kind = doc.get("kind")
    problems = []
    if kind not in API_VERSIONS:
        return [f"unexpected kind {kind!r}"]
    if doc.get("apiVersion") != API_VERSIONS[kind]:
        problems.append(f"{kind}: apiVersion {doc.get('apiVersion')!r} != {API_VERSIONS[kind]!r}")
    if not (doc.get("metadata") or {}).get("name"):
        problems.append(f"{kind}: no metadata.name")
    name = (doc.get("metadata") or {}).get("name") or ""
    if kind in ("RayCluster", "RayJob"):
        # KubeRay: a DNS-1035 label; RayJob names leave room for the cluster suffix.
        limit = 53 if kind == "RayCluster" else 47
        if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) or len(name) > limit:
            problems.append(f"{kind}: name {name!r} is not a DNS-1035 label of at most {limit}")
    if kind == "RayJob":
        spec = doc.get("spec") or {}
        problems += unknown("RayJob.spec", spec, RAYJOB_SPEC_FIELDS)
        for key in ("entrypoint", "rayClusterSpec"):
            if not spec.get(key):
                problems.append(f"RayJob.spec.{key} is missing")
    for where, spec in cluster_specs(doc):
        problems += unknown(where, spec, RAYCLUSTER_SPEC_FIELDS)
        problems += unknown(f"{where}.autoscalerOptions", spec.get("autoscalerOptions"), AUTOSCALER_FIELDS)
        problems += unknown(f"{where}.authOptions", spec.get("authOptions"), AUTH_FIELDS)
        head = spec.get("headGroupSpec")
        if not isinstance(head, dict) or "template" not in head:
            problems.append(f"{where}.headGroupSpec.template is missing")
        else:
            problems += unknown(f"{where}.headGroupSpec", head, HEAD_GROUP_FIELDS)
        for group in spec.get("workerGroupSpecs") or []:
            gwhere = f"{where}.workerGroupSpecs[{group.get('groupName')}]"
            problems += unknown(gwhere, group, WORKER_GROUP_FIELDS)
            for key in ("groupName", "minReplicas", "maxReplicas", "template"):
                if key not in group:
                    problems.append(f"{gwhere}.{key} is missing")
            params = group.get("rayStartParams") or {}
            if any(not isinstance(v, str) for v in params.values()):
                problems.append(f"{gwhere}.rayStartParams: values must be strings")
        if any(not isinstance(v, str) for v in ((head or {}).get("rayStartParams") or {}).values()):
            problems.append(f"{where}.headGroupSpec.rayStartParams: values must be strings")
    for where, template in pod_templates(doc):
        problems += unknown(where, template, POD_TEMPLATE_FIELDS)
        problems += unknown(f"{where}.spec", template.get("spec"), POD_SPEC_FIELDS)
        if not (template.get("spec") or {}).get("containers"):
            problems.append(f"{where}: no containers")
    for where, c in containers(doc):
        problems += unknown(where, c, CONTAINER_FIELDS)
        if not c.get("name"):
            problems.append(f"{where}: no name")
    return problems


def auth_problems(doc: dict) -> list[str]:
    problems = []
    if doc.get("kind") == "Secret":
        problems.append(
            f"a Secret {(doc.get('metadata') or {}).get('name')!r} in a file: create it with kubectl"
        )
    for where, spec in cluster_specs(doc):
        auth = spec.get("authOptions") or {}
        if auth.get("mode") != "token" or auth.get("secretName") != SECRET_NAME:
            problems.append(f"{where}.authOptions {auth} != mode token from Secret {SECRET_NAME}")
        if auth.get("enableK8sTokenAuth"):
            problems.append(
                f"{where}.authOptions.enableK8sTokenAuth: not supported for RayJob; not used here"
            )
        if Version(str(spec.get("rayVersion", "0"))) < Version("2.52.0"):
            problems.append(f"{where}.rayVersion {spec.get('rayVersion')!r}: token auth needs Ray >= 2.52.0")
        # KubeRay injects these into the autoscaler itself and appends this env after
        # them: setting them here would give the container each variable twice.
        for entry in (spec.get("autoscalerOptions") or {}).get("env") or []:
            if str(entry.get("name", "")).startswith("RAY_AUTH"):
                problems.append(f"{where}.autoscalerOptions.env sets {entry.get('name')}: authOptions does")
    for where, c in containers(doc):
        env = env_of(c)
        mode = env.get("RAY_AUTH_MODE", [])
        if [e.get("value") for e in mode] != ["token"]:
            problems.append(f"{where}: RAY_AUTH_MODE is {[e.get('value') for e in mode]}, not token once")
        token = env.get("RAY_AUTH_TOKEN", [])
        refs = [((e.get("valueFrom") or {}).get("secretKeyRef") or {}) for e in token]
        if len(token) != 1 or refs[0] != {"name": SECRET_NAME, "key": SECRET_KEY}:
            problems.append(
                f"{where}: RAY_AUTH_TOKEN is not exactly one secretKeyRef to {SECRET_NAME}/{SECRET_KEY}"
            )
        if "RAY_AUTH_TOKEN_PATH" in env:
            problems.append(f"{where}: RAY_AUTH_TOKEN_PATH set; the token comes from the Secret")
    for path, node in nodes(doc):
        if "name" in node and "value" in node and SECRET_NAMES.search(str(node["name"])):
            problems.append(f"{path}: {node['name']} has a literal value")
    return problems


def exposure_problems(doc: dict) -> list[str]:
    problems = []
    kind = doc.get("kind")
    if kind in EXPOSING_KINDS:
        problems.append(f"a {kind} exposes the cluster")
    if kind == "Service" and (doc.get("spec") or {}).get("type") in EXPOSING_SERVICE_TYPES:
        problems.append(f"Service {(doc.get('metadata') or {}).get('name')} of type {doc['spec']['type']}")
    for where, spec in cluster_specs(doc):
        head = spec.get("headGroupSpec") or {}
        if head.get("serviceType") in EXPOSING_SERVICE_TYPES:
            problems.append(f"{where}.headGroupSpec.serviceType {head['serviceType']}")
        if ((head.get("headService") or {}).get("spec") or {}).get("type") in EXPOSING_SERVICE_TYPES:
            problems.append(
                f"{where}.headGroupSpec.headService of type {head['headService']['spec']['type']}"
            )
        if head.get("enableIngress"):
            problems.append(f"{where}.headGroupSpec.enableIngress")
    for where, template in pod_templates(doc):
        if (template.get("spec") or {}).get("hostNetwork"):
            problems.append(f"{where}: hostNetwork")
    for where, c in containers(doc):
        for port in c.get("ports") or []:
            if "hostPort" in port:
                problems.append(f"{where}: hostPort {port['hostPort']}")
    return problems


def dashboard_problems(doc: dict) -> list[str]:
    problems = []
    for where, spec in cluster_specs(doc):
        head = spec.get("headGroupSpec") or {}
        host = (head.get("rayStartParams") or {}).get("dashboard-host")
        if host == "127.0.0.1":
            continue
        if host is None:
            problems.append(f"{where}: dashboard-host not set (KubeRay's default is 0.0.0.0)")
        elif host != "0.0.0.0":
            problems.append(f"{where}: dashboard-host {host!r} is neither 127.0.0.1 nor 0.0.0.0")
        elif head.get("serviceType") != "ClusterIP" or exposure_problems(doc):
            problems.append(f"{where}: dashboard-host 0.0.0.0 without the head being ClusterIP only")
    return problems


def placement_problems(doc: dict) -> list[str]:
    """The head holds no GPU, so every trial (one process with its CPUs and GPU) runs on a
    GPU pod; and no group announces a custom resource, which no trial asks for."""
    problems = []
    for where, spec in cluster_specs(doc):
        head = spec.get("headGroupSpec") or {}
        params = head.get("rayStartParams") or {}
        if params.get("num-gpus") != "0":
            problems.append(f"{where}: the head's num-gpus is {params.get('num-gpus')!r}, not '0'")
        groups = [("headGroupSpec", head)]
        groups += [(f"workerGroupSpecs[{g.get('groupName')}]", g) for g in spec.get("workerGroupSpecs") or []]
        for name, group in groups:
            declared = {**ray_resources(group.get("rayStartParams")), **(group.get("resources") or {})}
            custom = sorted(set(declared) - RAY_RESOURCES)
            if custom:
                problems.append(f"{where}.{name} announces {', '.join(custom)}, which no trial asks for")
    return problems


def ray_start_problems(doc: dict) -> list[str]:
    """rayStartParams as `ray start` gets them: KubeRay writes ` --key=value` for each (a
    "true" value as the bare flag) into a bash command line; Ray's own CLI must accept
    every one of them, as it would on the pod."""
    import click
    from ray.scripts.scripts import start

    problems = []
    for where, spec in cluster_specs(doc):
        groups = [("headGroupSpec", spec.get("headGroupSpec") or {}, ["--head"])]
        groups += [
            (f"workerGroupSpecs[{g.get('groupName')}]", g, ["--address=head:6379"])
            for g in spec.get("workerGroupSpecs") or []
        ]
        for name, group, base in groups:
            params = group.get("rayStartParams") or {}
            line = " ".join(
                f"--{k}" if str(v).lower() == "true" else f"--{k}={v}" for k, v in sorted(params.items())
            )
            try:
                start.make_context("start", base + shlex.split(line))
            except (click.UsageError, ValueError) as err:
                problems.append(f"{where}.{name}.rayStartParams: ray start refuses them: {err}")
            try:
                ray_resources(params)
            except ValueError as err:
                problems.append(
                    f"{where}.{name}.rayStartParams.resources is not JSON KubeRay can read: {err}"
                )
    return problems


def quantity(text) -> float:
    text = str(text)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def gpus_per_pod(group: dict) -> float:
    pod = (group.get("template") or {}).get("spec") or {}
    limits = ((pod.get("containers") or [{}])[0].get("resources") or {}).get("limits") or {}
    return quantity(limits.get("nvidia.com/gpu", 0))


def scaling_problems(doc: dict) -> list[str]:
    problems = []
    for where, spec in cluster_specs(doc):
        if spec.get("enableInTreeAutoscaling") is not True:
            problems.append(f"{where}: enableInTreeAutoscaling is not true")
        groups = spec.get("workerGroupSpecs") or []
        if not any(gpus_per_pod(g) >= 1 for g in groups):
            problems.append(f"{where}: no worker group with a GPU")
        for group in groups:
            lo, hi = group.get("minReplicas"), group.get("maxReplicas")
            n = group.get("replicas", lo)
            if not all(isinstance(v, int) and v >= 0 for v in (lo, n, hi)) or not lo <= n <= hi:
                problems.append(
                    f"{where}.workerGroupSpecs[{group.get('groupName')}]: not 0 <= "
                    f"minReplicas {lo} <= replicas {n} <= maxReplicas {hi}"
                )
    for where, c in containers(doc):
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            for key in ("cpu", "memory"):
                if key not in (res.get(part) or {}):
                    problems.append(f"{where}: no {part}.{key}")
    return problems


def security_problems(doc: dict, uid: int) -> list[str]:
    problems = []
    for where, template in pod_templates(doc):
        pod = (template.get("spec") or {}).get("securityContext") or {}
        if pod.get("runAsNonRoot") is not True or pod.get("runAsUser") != uid:
            problems.append(f"{where}: pod securityContext is not runAsNonRoot with the image's uid {uid}")
        if (template.get("spec") or {}).get("hostPID") or (template.get("spec") or {}).get("hostIPC"):
            problems.append(f"{where}: shares a host namespace")
    contexts = [(where, c.get("securityContext") or {}) for where, c in containers(doc)]
    for where, spec in cluster_specs(doc):
        if spec.get("autoscalerOptions") is not None:
            contexts.append(
                (f"{where}.autoscalerOptions", spec["autoscalerOptions"].get("securityContext") or {})
            )
    for where, ctx in contexts:
        dropped = (ctx.get("capabilities") or {}).get("drop") or []
        if ctx.get("allowPrivilegeEscalation") is not False or "ALL" not in dropped:
            problems.append(f"{where}: privilege escalation allowed or capabilities kept")
        if ctx.get("privileged") or ctx.get("runAsUser") == 0 or ctx.get("runAsNonRoot") is False:
            problems.append(f"{where}: privileged or root")
    return problems


def credential_problems(doc: dict, accounts: dict[str, dict]) -> list[str]:
    """S3 credentials only through the service accounts (IRSA), never as keys."""
    problems = []
    for path, node in nodes(doc):
        if node.get("name") in STATIC_AWS_KEYS and ("value" in node or "valueFrom" in node):
            problems.append(f"{path}: {node['name']} in the environment; use the service account's role")
    for where, template in pod_templates(doc):
        if "submitterPodTemplate" in where:
            continue  # the submitter only talks to Ray
        account = (template.get("spec") or {}).get("serviceAccountName")
        annotations = ((accounts.get(account) or {}).get("metadata") or {}).get("annotations") or {}
        annotation = annotations.get(IRSA_ANNOTATION, "")
        if not re.fullmatch(r"arn:aws:iam::[^:\s]+:role/[\w+=,.@/-]+", annotation):
            problems.append(f"{where}: service account {account!r} has no IRSA role annotation")
    return problems


def entrypoint_problems(argv: list[str]) -> list[str]:
    """A `python -m collatz_ray.tune` command that joins a cluster and writes to S3."""
    if argv[:3] != ["python", "-m", "collatz_ray.tune"]:
        return [f"not `python -m collatz_ray.tune ...`: {argv[:3]}"]
    args = argv[3:]
    p = tune_parser()
    known = {s for action in p._actions for s in action.option_strings}
    problems = [
        f"{a}: not a flag of collatz_ray.tune (spelled out)"
        for a in args
        if a.startswith("-") and a.split("=", 1)[0] not in known
    ]
    try:
        parsed = p.parse_args(args)
    except UsageError as err:
        return problems + [f"collatz_ray.tune refuses it: {err}"]
    if not parsed.space or not (REPO / "search_spaces" / f"{parsed.space}.yaml").is_file():
        problems.append(f"--space {parsed.space}: no search_spaces/{parsed.space}.yaml")
    if parsed.address != "auto":
        problems.append(f"--address {parsed.address}: the driver runs on the head, where auto joins it")
    if not str(parsed.storage).startswith("s3://"):
        problems.append(f"--storage {parsed.storage}: a multi-node search needs s3:// storage")
    return problems


def search_fit_problems(rayjob: dict) -> list[str]:
    """The search's GPUs and concurrency against the GPU group's bounds: at least one
    GPU from the start (collatz_ray.tune refuses --gpus-per-trial on a cluster without
    one), and no more trials at once than the group can hold at its maximum."""
    try:
        parsed = tune_parser().parse_args(entrypoint_argv(rayjob)[3:])
    except UsageError as err:
        return [str(err)]
    groups = ((rayjob.get("spec") or {}).get("rayClusterSpec") or {}).get("workerGroupSpecs") or []
    at_start = sum(gpus_per_pod(g) * g.get("minReplicas", 0) for g in groups)
    at_most = sum(gpus_per_pod(g) * g.get("maxReplicas", 0) for g in groups)
    problems = []
    if not parsed.gpus_per_trial:
        problems.append(
            "--gpus-per-trial is not set: the search would size itself to the GPUs present at start"
        )
    elif at_start < parsed.gpus_per_trial:
        problems.append(
            f"--gpus-per-trial {parsed.gpus_per_trial:g} but {at_start:g} GPUs at start (minReplicas)"
        )
    if parsed.max_concurrent is None:
        problems.append("--max-concurrent is not set: the autoscaler would never be asked for more GPUs")
    elif parsed.gpus_per_trial and parsed.max_concurrent * parsed.gpus_per_trial > at_most:
        problems.append(
            f"--max-concurrent {parsed.max_concurrent} needs more than the {at_most:g} GPUs of maxReplicas"
        )
    return problems


def lifecycle_problems(rayjob: dict) -> list[str]:
    spec = rayjob.get("spec") or {}
    problems = []
    if spec.get("shutdownAfterJobFinishes") is not True:
        problems.append("shutdownAfterJobFinishes is not true: the cluster would outlive the search")
    ttl = spec.get("ttlSecondsAfterFinished", 0)
    if not isinstance(ttl, int) or ttl < 0:
        problems.append(f"ttlSecondsAfterFinished {ttl!r} is not a non-negative integer")
    if spec.get("submissionMode", "K8sJobMode") not in SUBMISSION_MODES:
        problems.append(f"submissionMode {spec.get('submissionMode')!r} does not submit the entrypoint")
    for key in ("activeDeadlineSeconds", "preRunningDeadlineSeconds"):
        if key in spec and not (isinstance(spec[key], int) and spec[key] > 0):
            problems.append(f"{key} {spec[key]!r} is not a positive integer")
    if spec.get("clusterSelector"):
        problems.append("clusterSelector: this RayJob brings its own cluster")
    submitter = (spec.get("submitterPodTemplate") or {}).get("spec")
    if submitter is not None and submitter.get("restartPolicy") not in ("Never", "OnFailure"):
        problems.append(
            f"submitter restartPolicy {submitter.get('restartPolicy')!r}: a Job needs Never or OnFailure"
        )
    return problems


def differences(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            yield from differences(a.get(key), b.get(key), f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, f"{path}[{i}]")
    elif a != b:
        yield path


# The one intended difference between rayjob.yaml's cluster and raycluster.yaml's.
INTENDED_DIFFERENCES = {".headGroupSpec.rayStartParams.dashboard-host"}


def drift_problems(raycluster: dict, rayjob: dict) -> list[str]:
    found = set(differences(raycluster.get("spec"), (rayjob.get("spec") or {}).get("rayClusterSpec")))
    return [
        f"rayjob.yaml's cluster differs from raycluster.yaml at {p}"
        for p in sorted(found - INTENDED_DIFFERENCES)
    ]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files():
    return manifests()


@pytest.fixture(scope="module")
def raycluster(files):
    return the(files["raycluster.yaml"], "RayCluster")


@pytest.fixture(scope="module")
def rayjob(files):
    return the(files["rayjob.yaml"], "RayJob")


@pytest.fixture(scope="module")
def accounts(files):
    return {d["metadata"]["name"]: d for d in files["namespace.yaml"] if d.get("kind") == "ServiceAccount"}


@pytest.fixture(scope="module")
def dockerfile():
    return DOCKERFILE.read_text()


@pytest.fixture(scope="module")
def image(dockerfile):
    return image_line(dockerfile)


@pytest.fixture(scope="module")
def uid(dockerfile):
    users = [args for name, args in instructions(dockerfile) if name == "USER"]
    return int(users[-1].split(":")[0])


def ray_docs(files):
    return [
        (name, d) for name, docs in files.items() for d in docs if d.get("kind") in ("RayCluster", "RayJob")
    ]


# -- the shipped files ---------------------------------------------------------------------


def test_the_expected_files_and_kinds_are_there(files):
    # Guards every test below against an empty glob or a renamed file.
    assert set(files) == {"namespace.yaml", "raycluster.yaml", "rayjob.yaml"}
    assert sorted(d["kind"] for d in files["namespace.yaml"]) == [
        "Namespace",
        "ServiceAccount",
        "ServiceAccount",
    ]
    assert [d["kind"] for d in files["raycluster.yaml"]] == ["RayCluster"]
    assert [d["kind"] for d in files["rayjob.yaml"]] == ["RayJob"]


def test_kinds_api_versions_and_field_names(files):
    assert [p for docs in files.values() for d in docs for p in field_problems(d)] == []


def test_every_object_is_in_the_namespace_of_namespace_yaml(files):
    namespace = the(files["namespace.yaml"], "Namespace")["metadata"]["name"]
    outside = [
        (name, d["kind"])
        for name, docs in files.items()
        for d in docs
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != namespace
    ]
    assert outside == []


def test_the_dockerfile(dockerfile):
    assert dockerfile_problems(dockerfile, DOCKERIGNORE.read_text()) == []


def test_every_container_runs_the_image_the_dockerfile_names(files, image):
    assert image_problems(files, image) == []


def test_the_image_tag_spells_the_versions_it_holds(dockerfile, image):
    values = build_args(instructions(dockerfile))
    name, _, tag = image.rpartition(":")
    assert name.endswith("/collatz-ray")
    assert tag == (
        f"{PYPROJECT['project']['version']}-ray{values['RAY_VERSION']}-"
        f"{values['PYTHON_TAG']}-{values['CUDA_TAG']}"
    )


def test_ray_is_the_projects_version_everywhere(dockerfile, files):
    values = build_args(instructions(dockerfile))
    # The Ray these tests run is the one the launcher configs pin (test_cluster_configs).
    assert values["RAY_VERSION"] == ray.__version__
    assert Version(values["RAY_VERSION"]) in pyproject_requirement("ray").specifier
    assert {
        d["spec"].get("rayVersion") or d["spec"]["rayClusterSpec"].get("rayVersion")
        for _, d in ray_docs(files)
    } == {values["RAY_VERSION"]}


def test_python_of_the_image_satisfies_requires_python(dockerfile):
    tag = build_args(instructions(dockerfile))["PYTHON_TAG"]
    match = re.fullmatch(r"py3(\d+)", tag)
    assert match, tag
    assert Version(f"3.{match.group(1)}") in SpecifierSet(PYPROJECT["project"]["requires-python"])


@pytest.mark.parametrize("rule", ["auth", "exposure", "dashboard", "placement", "scaling", "ray start"])
def test_cluster_rules(files, rule):
    check = {
        "auth": auth_problems,
        "exposure": exposure_problems,
        "dashboard": dashboard_problems,
        "placement": placement_problems,
        "scaling": scaling_problems,
        "ray start": ray_start_problems,
    }[rule]
    docs = [d for ds in files.values() for d in ds]
    assert [p for d in docs for p in check(d)] == []


def test_the_long_lived_cluster_keeps_its_dashboard_on_loopback(raycluster):
    # Nothing but a port-forward needs it there; only the RayJob's operator needs more.
    assert raycluster["spec"]["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "127.0.0.1"


def test_pods_run_as_the_images_non_root_user(files, uid):
    assert uid != 0
    assert [p for _, d in ray_docs(files) for p in security_problems(d, uid)] == []


def test_s3_credentials_come_from_the_service_accounts(files, accounts):
    assert set(accounts) == {"collatz-ray-head", "collatz-ray-worker"}
    assert [p for _, d in ray_docs(files) for p in credential_problems(d, accounts)] == []


def test_the_rayjob_entrypoint_is_a_collatz_ray_tune_search(rayjob):
    assert entrypoint_problems(entrypoint_argv(rayjob)) == []


def test_the_search_fits_the_gpu_groups_bounds(rayjob):
    assert search_fit_problems(rayjob) == []


def test_the_rayjob_cleans_up_after_itself(rayjob):
    assert lifecycle_problems(rayjob) == []


def test_the_rayjob_cluster_is_raycluster_yaml_but_for_the_dashboard_host(raycluster, rayjob):
    assert drift_problems(raycluster, rayjob) == []


def test_placeholders_are_marked_replace_me(files, image):
    # What a user must fill in fails closed while it is left (an invalid image name, a
    # bucket and a role that do not exist), and `grep REPLACE_ME` finds it all.
    assert image.startswith("REPLACE_ME_REGISTRY/")
    text = {p.name: p.read_text() for p in K8S.glob("*.yaml")}
    assert "s3://REPLACE_ME_BUCKET/" in text["rayjob.yaml"]
    assert "REPLACE_ME_ACCOUNT_ID" in text["namespace.yaml"]


# -- docs/kubernetes.md ------------------------------------------------------------------------


def doc_blocks() -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", DOC.read_text(), re.M | re.S)


def doc_commands() -> list[str]:
    """The doc's shell commands, continuation lines joined."""
    return [
        c.strip()
        for block in doc_blocks()
        for c in block.replace("\\\n", " ").splitlines()
        if c.strip() and not c.strip().startswith("#")
    ]


def test_the_doc_builds_and_uses_the_dockerfiles_image(image):
    tag = image.split("/", 1)[1]
    builds = [c for c in doc_commands() if c.startswith("docker build")]
    assert builds and all("-f cluster/k8s/Dockerfile" in c and c.endswith(" .") for c in builds)
    assert f'IMAGE="$REGISTRY/{tag}"' in doc_commands()


def test_the_doc_creates_the_secret_the_manifests_read(files):
    namespace = the(files["namespace.yaml"], "Namespace")["metadata"]["name"]
    creates = [shlex.split(c) for c in doc_commands() if c.startswith("kubectl create secret")]
    assert len(creates) == 1
    argv = creates[0]
    assert argv[3:5] == ["generic", SECRET_NAME]
    pairs = list(zip(argv, argv[1:]))
    assert (
        f"--namespace={namespace}" in argv
        or ("--namespace", namespace) in pairs
        or ("-n", namespace) in pairs
    )
    assert any(a.startswith(f"--from-file={SECRET_KEY}=") for a in argv)
    assert not any(a.startswith("--from-literal") for a in argv)


def test_the_doc_names_only_files_that_exist():
    named = set(re.findall(r"cluster/k8s/[\w./-]+", DOC.read_text()))
    assert named and {p for p in named if not (REPO / p.rstrip(".")).exists()} == set()


def test_every_search_the_doc_submits_is_a_valid_command():
    searches = [c.split(" -- ", 1)[1] for c in doc_commands() if c.startswith("ray job submit")]
    assert searches
    for search in searches:
        argv = shlex.split(search.replace("$BUCKET", "bucket"))
        assert entrypoint_problems(argv) == [], search


def test_the_cluster_doc_links_the_kubernetes_doc():
    assert "(kubernetes.md)" in (REPO / "docs" / "cluster.md").read_text()


# -- each rule can fail ------------------------------------------------------------------------


def mutated(doc: dict, change) -> dict:
    doc = copy.deepcopy(doc)
    change(doc)
    return doc


def job_cluster(d):
    return d["spec"]["rayClusterSpec"]


def job_head(d):
    return job_cluster(d)["headGroupSpec"]


def job_worker(d):
    return job_cluster(d)["workerGroupSpecs"][0]


def job_worker_container(d):
    return job_worker(d)["template"]["spec"]["containers"][0]


def set_entrypoint(text):
    def change(d):
        d["spec"]["entrypoint"] = text

    return change


ENTRY = (
    "python -m collatz_ray.tune --space lookahead --address auto --storage s3://b/c "
    "--gpus-per-trial 1 --max-concurrent 4"
)
AWS_KEY_FROM_A_SECRET = {
    "name": "AWS_SECRET_ACCESS_KEY",
    "valueFrom": {"secretKeyRef": {"name": "aws", "key": "k"}},
}

# (what is broken, the rule, a phrase of the complaint, the change to rayjob.yaml)
RAYJOB_MUTATIONS = [
    (
        "a typo in a RayJob field",
        "fields",
        "unknown field 'shutdownAfterJobFinish'",
        lambda d: d["spec"].update(shutdownAfterJobFinish=True),
    ),
    (
        "a typo in a container field",
        "fields",
        "unknown field 'resource'",
        lambda d: job_worker_container(d).update(resource={}),
    ),
    (
        "a worker group without maxReplicas",
        "fields",
        "maxReplicas is missing",
        lambda d: job_worker(d).pop("maxReplicas"),
    ),
    ("an old apiVersion", "fields", "apiVersion", lambda d: d.update(apiVersion="ray.io/v1alpha1")),
    (
        "a numeric rayStartParams value",
        "fields",
        "must be strings",
        lambda d: job_head(d)["rayStartParams"].update({"num-gpus": 0}),
    ),
    (
        "a worker without RAY_AUTH_MODE",
        "auth",
        "RAY_AUTH_MODE",
        lambda d: job_worker_container(d).update(env=job_worker_container(d)["env"][1:]),
    ),
    (
        "RAY_AUTH_MODE disabled",
        "auth",
        "RAY_AUTH_MODE",
        lambda d: job_worker_container(d)["env"][0].update(value="disabled"),
    ),
    (
        "a literal token",
        "auth",
        "literal value",
        lambda d: job_worker_container(d)["env"].__setitem__(1, {"name": "RAY_AUTH_TOKEN", "value": "abc"}),
    ),
    (
        "the token from another Secret",
        "auth",
        "secretKeyRef",
        lambda d: job_worker_container(d)["env"][1]["valueFrom"]["secretKeyRef"].update(name="other"),
    ),
    (
        "authOptions off",
        "auth",
        "authOptions",
        lambda d: job_cluster(d)["authOptions"].update(mode="disabled"),
    ),
    ("token auth on an old Ray", "auth", "2.52.0", lambda d: job_cluster(d).update(rayVersion="2.51.0")),
    (
        "the token duplicated into the autoscaler",
        "auth",
        "autoscalerOptions.env",
        lambda d: job_cluster(d)["autoscalerOptions"].update(
            env=[{"name": "RAY_AUTH_MODE", "value": "token"}]
        ),
    ),
    ("a NodePort head", "exposure", "NodePort", lambda d: job_head(d).update(serviceType="NodePort")),
    (
        "a LoadBalancer head service",
        "exposure",
        "LoadBalancer",
        lambda d: job_head(d).update(headService={"spec": {"type": "LoadBalancer"}}),
    ),
    ("an ingress", "exposure", "enableIngress", lambda d: job_head(d).update(enableIngress=True)),
    (
        "a hostPort",
        "exposure",
        "hostPort",
        lambda d: job_worker_container(d).update(ports=[{"containerPort": 8265, "hostPort": 8265}]),
    ),
    (
        "0.0.0.0 behind a NodePort",
        "dashboard",
        "ClusterIP",
        lambda d: job_head(d).update(serviceType="NodePort"),
    ),
    (
        "0.0.0.0 without an explicit ClusterIP",
        "dashboard",
        "ClusterIP",
        lambda d: job_head(d).pop("serviceType"),
    ),
    (
        "no dashboard-host (KubeRay's 0.0.0.0)",
        "dashboard",
        "not set",
        lambda d: job_head(d)["rayStartParams"].pop("dashboard-host"),
    ),
    (
        "a custom resource on a worker",
        "placement",
        "announces spot_ok",
        lambda d: job_worker(d)["rayStartParams"].update(resources="'{\"spot_ok\": 1}'"),
    ),
    (
        "a custom resource on the head",
        "placement",
        "headGroupSpec announces spot_ok",
        lambda d: job_head(d)["rayStartParams"].update(resources="'{\"spot_ok\": 1}'"),
    ),
    (
        "a custom resource in a group's resources",
        "placement",
        "announces spot_ok",
        lambda d: job_worker(d).update(resources={"CPU": "3", "spot_ok": "1"}),
    ),
    (
        "GPUs on the head",
        "placement",
        "num-gpus",
        lambda d: job_head(d)["rayStartParams"].update({"num-gpus": "1"}),
    ),
    (
        "a misspelt ray start option",
        "ray start",
        "ray start refuses",
        lambda d: job_head(d)["rayStartParams"].update({"dashbord-host": "127.0.0.1"}),
    ),
    (
        "a bad ray start value",
        "ray start",
        "ray start refuses",
        lambda d: job_head(d)["rayStartParams"].update({"num-gpus": "one"}),
    ),
    (
        "resources KubeRay cannot parse",
        "ray start",
        "not JSON",
        lambda d: job_head(d)["rayStartParams"].update(resources='"{\\"spot_ok\\": 1}"'),
    ),
    (
        "autoscaling off",
        "scaling",
        "enableInTreeAutoscaling",
        lambda d: job_cluster(d).update(enableInTreeAutoscaling=False),
    ),
    (
        "minReplicas above maxReplicas",
        "scaling",
        "minReplicas",
        lambda d: job_worker(d).update(minReplicas=5, replicas=5),
    ),
    (
        "a container without limits",
        "scaling",
        "limits.cpu",
        lambda d: job_worker_container(d)["resources"].pop("limits"),
    ),
    (
        "no GPU in any worker group",
        "scaling",
        "no worker group with a GPU",
        lambda d: [
            job_worker_container(d)["resources"][k].pop("nvidia.com/gpu") for k in ("requests", "limits")
        ],
    ),
    (
        "root",
        "security",
        "runAsNonRoot",
        lambda d: job_worker(d)["template"]["spec"]["securityContext"].update(runAsUser=0),
    ),
    (
        "privilege escalation",
        "security",
        "privilege escalation",
        lambda d: job_worker_container(d)["securityContext"].update(allowPrivilegeEscalation=True),
    ),
    (
        "an autoscaler that keeps capabilities",
        "security",
        "capabilities",
        lambda d: job_cluster(d)["autoscalerOptions"]["securityContext"].pop("capabilities"),
    ),
    (
        "a static AWS key",
        "credentials",
        "AWS_SECRET_ACCESS_KEY",
        lambda d: job_worker_container(d)["env"].append(AWS_KEY_FROM_A_SECRET),
    ),
    (
        "a worker without the IRSA account",
        "credentials",
        "IRSA",
        lambda d: job_worker(d)["template"]["spec"].pop("serviceAccountName"),
    ),
    ("a misspelt flag", "entrypoint", "--spaces", set_entrypoint(ENTRY.replace("--space", "--spaces"))),
    (
        "an abbreviated flag",
        "entrypoint",
        "--max-conc",
        set_entrypoint(ENTRY.replace("--max-concurrent", "--max-conc")),
    ),
    (
        "a space that does not exist",
        "entrypoint",
        "no_such_space",
        set_entrypoint(ENTRY.replace("lookahead", "no_such_space")),
    ),
    (
        "a bad flag value",
        "entrypoint",
        "refuses",
        set_entrypoint(ENTRY.replace("--max-concurrent 4", "--max-concurrent 0")),
    ),
    (
        "another program",
        "entrypoint",
        "not `python -m collatz_ray.tune",
        set_entrypoint("python -m collatz_ray.train --smoke"),
    ),
    ("local storage", "entrypoint", "s3://", set_entrypoint(ENTRY.replace("s3://b/c", "results"))),
    ("an embedded Ray", "entrypoint", "--address", set_entrypoint(ENTRY.replace(" --address auto", ""))),
    ("no GPU at start", "fit", "at start", lambda d: job_worker(d).update(minReplicas=0, replicas=0)),
    (
        "more trials than GPUs",
        "fit",
        "maxReplicas",
        set_entrypoint(ENTRY.replace("--max-concurrent 4", "--max-concurrent 9")),
    ),
    (
        "no --max-concurrent",
        "fit",
        "--max-concurrent",
        set_entrypoint(ENTRY.replace(" --max-concurrent 4", "")),
    ),
    (
        "a cluster that outlives the search",
        "lifecycle",
        "shutdownAfterJobFinishes",
        lambda d: d["spec"].update(shutdownAfterJobFinishes=False),
    ),
    (
        "a submitter that restarts forever",
        "lifecycle",
        "restartPolicy",
        lambda d: d["spec"]["submitterPodTemplate"]["spec"].update(restartPolicy="Always"),
    ),
    (
        "a negative deadline",
        "lifecycle",
        "activeDeadlineSeconds",
        lambda d: d["spec"].update(activeDeadlineSeconds=-1),
    ),
]


@pytest.mark.parametrize("what, rule, phrase, change", RAYJOB_MUTATIONS, ids=[m[0] for m in RAYJOB_MUTATIONS])
def test_a_broken_rayjob_is_caught(rayjob, accounts, uid, what, rule, phrase, change):
    # The shipped RayJob passes every rule; the mutated one fails the named one.
    check = {
        "fields": field_problems,
        "auth": auth_problems,
        "exposure": exposure_problems,
        "dashboard": dashboard_problems,
        "placement": placement_problems,
        "ray start": ray_start_problems,
        "scaling": scaling_problems,
        "security": lambda d: security_problems(d, uid),
        "credentials": lambda d: credential_problems(d, accounts),
        "entrypoint": lambda d: entrypoint_problems(entrypoint_argv(d)),
        "fit": search_fit_problems,
        "lifecycle": lifecycle_problems,
    }[rule]
    assert check(rayjob) == []
    problems = check(mutated(rayjob, change))
    assert any(phrase in p for p in problems), problems


def test_a_literal_secret_or_an_exposing_object_in_a_file_is_caught():
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_NAME},
        "stringData": {SECRET_KEY: "not-a-real-token"},
    }
    assert any("a Secret" in p for p in auth_problems(secret))
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "dash"},
        "spec": {"type": "LoadBalancer"},
    }
    assert exposure_problems(service)
    assert exposure_problems(
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"}}
    )
    assert field_problems(service)  # and no kind outside the expected ones


def test_a_raycluster_whose_dashboard_leaves_loopback_is_caught(raycluster):
    # 0.0.0.0 is allowed behind ClusterIP; the RayCluster has no reason for it, and the
    # drift test says so (its only allowed difference is the RayJob's).
    changed = mutated(
        raycluster,
        lambda d: d["spec"]["headGroupSpec"]["rayStartParams"].update({"dashboard-host": "0.0.0.0"}),
    )
    assert dashboard_problems(changed) == []
    changed["spec"]["headGroupSpec"]["serviceType"] = "LoadBalancer"
    assert dashboard_problems(changed)


def test_drift_between_the_two_clusters_is_caught(raycluster, rayjob):
    changed = mutated(rayjob, lambda d: job_worker(d).update(maxReplicas=8))
    assert drift_problems(raycluster, changed) == [
        "rayjob.yaml's cluster differs from raycluster.yaml at .workerGroupSpecs[0].maxReplicas"
    ]


def test_another_image_is_caught(files, image):
    changed = dict(files)
    job = files["rayjob.yaml"][0]
    changed["rayjob.yaml"] = [
        mutated(job, lambda d: job_worker_container(d).update(image="rayproject/ray:2.60.0"))
    ]
    assert any("rayproject/ray:2.60.0" in p for p in image_problems(changed, image))
    changed["rayjob.yaml"] = [
        mutated(job, lambda d: job_cluster(d)["autoscalerOptions"].update(image="other"))
    ]
    assert any("autoscalerOptions" in p for p in image_problems(changed, image))


DOCKERFILE_MUTATIONS = [
    (
        "an editable install",
        "editable",
        lambda t: t.replace("pip install --no-cache-dir . ", "pip install --no-cache-dir -e . "),
    ),
    (
        "no install of the checkout",
        "pip install .",
        lambda t: t.replace("pip install --no-cache-dir . ", "pip install --no-cache-dir collatz-ray "),
    ),
    ("another torch range", "torch", lambda t: t.replace('"torch>=2.4,<3"', '"torch>=2.4,<2.6"')),
    ("the CPU torch wheel", "PyTorch's index", lambda t: t.replace('--index-url "${TORCH_INDEX_URL}" ', "")),
    ("torch for another CUDA", "PyTorch's index", lambda t: t.replace("whl/${CUDA_TAG}", "whl/cu118")),
    (
        "Ray left free to move",
        "Ray is not pinned",
        lambda t: t.replace('"ray[default,tune,train]==${RAY_VERSION}"', ""),
    ),
    (
        "Ray without its extras",
        "extras",
        lambda t: t.replace('"ray[default,tune,train]==', '"ray[default]=='),
    ),
    ("another base image", "base image", lambda t: t.replace("FROM rayproject/ray:", "FROM anyscale/ray:")),
    ("root at the end", "not a numeric non-root uid", lambda t: t + "\nUSER root\n"),
    ("uid 0", "not a numeric non-root uid", lambda t: t.replace("USER 1000:100", "USER 0")),
    ("a named user", "not a numeric non-root uid", lambda t: t.replace("USER 1000:100", "USER ray")),
    ("a baked token", "credential", lambda t: t + "\nENV RAY_AUTH_TOKEN=abc\n"),
    ("baked AWS keys", "credential", lambda t: t + "\nARG AWS_SECRET_ACCESS_KEY\n"),
    ("a copied token file", "credential", lambda t: t + "\nCOPY .ray/auth_token /home/ray/.ray/auth_token\n"),
    (
        "a package folder left out",
        "COPY sources",
        lambda t: t.replace("COPY --chown=1000:100 search_spaces ./search_spaces\n", ""),
    ),
    (
        "the whole checkout copied",
        "COPY sources",
        lambda t: t.replace(
            "COPY --chown=1000:100 search_spaces ./search_spaces", "COPY --chown=1000:100 . ./"
        ),
    ),
]


@pytest.mark.parametrize(
    "what, phrase, change", DOCKERFILE_MUTATIONS, ids=[m[0] for m in DOCKERFILE_MUTATIONS]
)
def test_a_broken_dockerfile_is_caught(dockerfile, what, phrase, change):
    ignore = DOCKERIGNORE.read_text()
    changed = change(dockerfile)
    assert changed != dockerfile, "the mutation did not apply"
    problems = dockerfile_problems(changed, ignore)
    assert any(phrase in p for p in problems), problems


def test_a_dockerignore_that_lets_everything_in_is_caught(dockerfile):
    ignore = DOCKERIGNORE.read_text()
    everything = ignore.replace("\n*\n", "\n")
    assert any(".dockerignore does not start" in p for p in dockerfile_problems(dockerfile, everything))
    assert any(".dockerignore keeps" in p for p in dockerfile_problems(dockerfile, ignore + "!results\n"))
