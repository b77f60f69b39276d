"""Real `ray start` nodes for tests, stopped by their own process groups only.

`ray stop` would kill every Ray on the machine (other tests', a developer's); instead
each `ray start` runs as the leader of a new session, the daemons it spawns stay in its
process group, and `stop` signals that group and nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

#: The `ray` command of the Python running the tests (its venv need not be on PATH).
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalCluster:
    """Nodes started with `ray start` in the environment `env` (the user's shell)."""

    port: int
    env: dict[str, str] = field(default_factory=lambda: {**os.environ, "RAY_AUTH_MODE": "token"})
    groups: list[int] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self, args: list[str]) -> None:
        proc = subprocess.Popen(
            [RAY, "start", *args, "--disable-usage-stats"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.groups.append(proc.pid)
        out, _ = proc.communicate(timeout=180)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{out[-2000:]}")

    def start_head(self, *, num_cpus: int, resources: dict[str, float] | None = None) -> None:
        args = [
            "--head",
            f"--port={self.port}",
            f"--dashboard-port={free_port()}",
            "--dashboard-host=127.0.0.1",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={num_cpus}",
        ]
        if resources:
            args.append(f"--resources={json.dumps(resources)}")
        self._start(args)

    def add_node(self, *, num_cpus: int, resources: dict[str, float]) -> int:
        """Start a node that joins the head; its index, for kill_node."""
        self._start(
            [f"--address={self.address}", f"--num-cpus={num_cpus}", f"--resources={json.dumps(resources)}"]
        )
        return len(self.groups) - 1

    def node_processes(self, index: int) -> set[int]:
        """The live processes of the index-th node started: its process group (raylet and
        daemons) and all their descendants (workers, trial processes)."""
        return _group_and_descendants(self.groups[index])

    def kill_node(self, index: int) -> set[int]:
        """SIGKILL every process of the node the index-th `ray start` started (the head is
        0): its raylet and daemons (its process group) and all their descendants (the
        workers, a trial's process), as when a spot machine is taken back. The pids."""
        killed: set[int] = set()
        for _ in range(3):  # a process started while the others were being killed
            live = self.node_processes(index) - killed
            if not live:
                break
            for pid in live:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            killed |= live
            time.sleep(1)
        return killed

    def node_ids_with(self, resource: str) -> set[str]:
        """Ids of the alive nodes that have `resource`, asked of the cluster itself."""
        code = (
            "import json, ray\n"
            f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
            "alive = [n['NodeID'] for n in ray.nodes()"
            f" if n['Alive'] and {resource!r} in n['Resources']]\n"
            "print('NODES ' + json.dumps(alive))\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        )
        # Ray may print log lines of its own (a node going away, say) around ours.
        (line,) = [line for line in proc.stdout.splitlines() if line.startswith("NODES ")]
        return set(json.loads(line.removeprefix("NODES ")))

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for group in self.groups:
                try:
                    os.killpg(group, sig)
                except ProcessLookupError:
                    pass
            time.sleep(3)


def _group_and_descendants(group: int) -> set[int]:
    """The live processes of process group `group`, and every descendant of them."""
    parents: dict[int, int] = {}
    members: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z":
            continue  # a zombie: already dead
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        if int(fields[2]) == group:
            members.add(pid)
    found, grew = set(members), True
    while grew:
        children = {pid for pid, ppid in parents.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    return found
