"""Starting or joining Ray: an embedded local Ray kept on loopback with token auth, or a
cluster from `ray start --head`."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import AuthenticationError

from collatz_ray.errors import UsageError, shown
from collatz_ray.search.ray import _ray_private as ray_private

_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
#: Set to 0 to start an embedded Ray without its dashboard.
DASHBOARD_ENV = "COLLATZ_RAY_DASHBOARD"


def connect(address: str | None, *, num_cpus: int | None = None) -> dict[str, float]:
    """Join `address` (a cluster from `ray start --head`) or start an embedded local Ray.

    The embedded Ray binds its node and dashboard to 127.0.0.1 and runs with token
    authentication; COLLATZ_RAY_DASHBOARD=0 starts it without the dashboard. Returns the
    cluster's resources.
    """
    if ray.is_initialized():
        return ray.cluster_resources()
    # Trial stdout (Ray's per-report lines) stays in the session logs; Tune still
    # prints trial errors, and error.txt keeps each trial's traceback.
    common: dict[str, Any] = dict(logging_level="WARNING", log_to_driver=False, configure_logging=True)
    if address is None:
        _match_driver_auth_mode()
        _private_token_file()
        # Ray starts its worker processes at nice 15; the trials are this Ray's work, and a
        # busy machine's ordinary processes would starve them (under four busy loops on 2
        # cores, trials took minutes to start and the search stopped as unplaceable).
        os.environ.setdefault("RAY_worker_niceness", "0")
        port = _free_local_port()
        with _single_machine_mode():
            # address="local": a new instance even when `ray start` left a cluster on
            # this machine (ray.init() with no address would silently join that one).
            context = ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=dashboard_wanted(),
                dashboard_host="127.0.0.1",
                dashboard_port=port,
                **ray_private.LOOPBACK_NODE,
                **common,
            )
    else:
        try:
            resolved = ray_private.canonical_address(address)
        except ConnectionError as err:
            raise UsageError(f"--address {address}: {err}") from None
        try:
            context = ray.init(
                address=resolved, runtime_env={"env_vars": {"RAY_ADDRESS": resolved}}, **common
            )
        except AuthenticationError:
            raise UsageError(
                f"--address {address}: this search uses token authentication but finds no "
                f"token (~/.ray/auth_token, RAY_AUTH_TOKEN); {_START_WITH_TOKEN}"
            ) from None
        except ConnectionError as err:
            if "nauthenticated" not in str(err) and "InvalidAuthToken" not in str(err):
                raise
            raise UsageError(
                f"--address {address}: the cluster at {resolved} refused this machine's "
                "token; use the cluster's (`ray get-auth-token` on its head)"
            ) from None
        _refuse_auth_mismatch(address, resolved, context.dashboard_url)
    global _dashboard_url, _dashboard_off
    _dashboard_url = context.dashboard_url or None
    _dashboard_off = address is None and not dashboard_wanted()
    return ray.cluster_resources()


_dashboard_url: str | None = None
#: The embedded Ray this process started was asked for no dashboard.
_dashboard_off = False


def dashboard_wanted() -> bool:
    """Whether an embedded Ray starts its dashboard: yes unless COLLATZ_RAY_DASHBOARD=0.
    Without it a search starts about 2 s sooner and spends about 8 CPU-seconds less on a
    2-core machine (the dashboard and its module processes); Tune and the trials need
    none of it."""
    value = os.environ.get(DASHBOARD_ENV, "1")
    if value not in ("0", "1"):
        raise UsageError(f"{DASHBOARD_ENV}={shown(value)}: expected 0 (no dashboard) or 1")
    return value == "1"


def dashboard_shown() -> str:
    """What the plan says of the dashboard."""
    url = dashboard_url()
    if url:
        return url
    if _dashboard_off:
        return f"off ({DASHBOARD_ENV}=0)"
    return "none (ray[default] not installed?)"


def dashboard_url() -> str | None:
    """The dashboard of the Ray this process started or joined (None without one)."""
    if not _dashboard_url:
        return None
    return _dashboard_url if "://" in _dashboard_url else f"http://{_dashboard_url}"


#: How to (re)start a cluster that a search can join.
_START_WITH_TOKEN = (
    "start the cluster with `ray get-auth-token --generate` and "
    "`RAY_AUTH_MODE=token ray start --head` (other nodes: the head's token in "
    "~/.ray/auth_token and `RAY_AUTH_MODE=token ray start --address=HEAD:6379`)"
)


def _refuse_auth_mismatch(address: str, resolved: str, dashboard_url: str | None) -> None:
    """A driver and a cluster in different auth modes connect, but then no trial can
    start: the cluster's processes call the driver without the token it demands, and
    every trial dies "cancelled before it started running". Ask the cluster's dashboard
    which mode it runs in (the endpoint its web UI asks) and refuse in one line."""
    cluster_mode = _cluster_auth_mode(dashboard_url)
    driver_mode = "token" if ray_private.driver_uses_token_auth() else "disabled"
    if cluster_mode is None or cluster_mode == driver_mode:
        return
    ray.shutdown()
    if driver_mode == "token":
        raise UsageError(
            f"--address {address}: the cluster at {resolved} runs without token "
            f"authentication, which this search requires; {_START_WITH_TOKEN}"
        )
    raise UsageError(
        f"--address {address}: the cluster at {resolved} runs with token authentication "
        "but RAY_AUTH_MODE disables it here; unset RAY_AUTH_MODE (the search then sends "
        "the token in ~/.ray/auth_token)"
    )


def _cluster_auth_mode(dashboard_url: str | None) -> str | None:
    """'token' or 'disabled' as the cluster's dashboard reports it; None if unknown."""
    if not dashboard_url:
        return None
    url = dashboard_url if "://" in dashboard_url else f"http://{dashboard_url}"
    try:
        with urllib.request.urlopen(f"{url}/api/authentication_mode", timeout=10) as response:
            mode = json.loads(response.read()).get("authentication_mode")
    except (OSError, ValueError, AttributeError):
        return None
    return mode if mode in ("token", "disabled") else None


@contextlib.contextmanager
def _single_machine_mode() -> Iterator[None]:
    """Keep the embedded node on 127.0.0.1. ray.init replaces _node_ip_address="127.0.0.1"
    with the machine's routable IP (services.resolve_ip_for_localhost), so GCS, raylet,
    workers, agents and metrics servers would listen there, reachable from other
    machines. With Ray's single-machine switch off (what it does on macOS/Windows) the
    node IP stays 127.0.0.1 and they all listen on loopback. The environment variable
    reaches the processes ray.init starts; both are restored afterwards so a later
    connect to a real cluster from this process resolves its IP normally."""
    saved_env = os.environ.get(_SINGLE_MACHINE_ENV)
    os.environ[_SINGLE_MACHINE_ENV] = "0"
    try:
        with ray_private.cluster_mode_off():
            yield
    finally:
        if saved_env is None:
            os.environ.pop(_SINGLE_MACHINE_ENV, None)
        else:
            os.environ[_SINGLE_MACHINE_ENV] = saved_env


def _match_driver_auth_mode() -> None:
    """Ray reads RAY_AUTH_MODE once per process. If Ray was imported and configured
    before this module set token auth, the processes ray.init starts would demand a
    token this driver does not send; start them in the driver's mode and say so."""
    if ray_private.driver_uses_token_auth():
        return
    os.environ["RAY_AUTH_MODE"] = "disabled"
    print(
        "collatz_ray: warning: Ray was configured before collatz_ray.search.ray was "
        "imported, so this local Ray runs without token authentication; set "
        "RAY_AUTH_MODE=token in the environment to keep it",
        file=sys.stderr,
    )


def _private_token_file() -> None:
    """The token an embedded Ray runs with, readable by this user alone. Ray writes a
    missing ~/.ray/auth_token with the process umask (often 0644); make it here first,
    0600, and tighten one that others can read."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token" or os.environ.get("RAY_AUTH_TOKEN"):
        return
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))  # Ray's own format: 256 random bits in hex


def _free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive_node_count() -> int:
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()
