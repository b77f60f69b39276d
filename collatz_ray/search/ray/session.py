"""A command's time on Ray: start or join it, run the work with Ctrl-C and SIGTERM
stopping Tune cleanly (interrupt.py), and shut Ray down however the work ends."""

from __future__ import annotations

import sys
from collections.abc import Callable

from collatz_ray.search.ray import cluster
from collatz_ray.search.ray.interrupt import Interruption, stop_cleanly_on_signals


def on_ray(
    address: str | None, work: Callable[[dict[str, float]], int], *, tool: str, path: str, resume: str
) -> int:
    """work(the cluster's resources) on the embedded Ray or the cluster at `address`;
    its exit status. When a signal stopped it, the status the signal calls for, after
    one line saying where the work is kept and the command (`resume`) that finishes it."""
    status, interruption = _run(address, work)
    if status is None:
        print(
            f"collatz_ray.{tool}: interrupted by {interruption.name}; everything so far is kept in "
            f"{path}. Resume with: {resume}",
            file=sys.stderr,
            flush=True,
        )
        return interruption.exit_status
    return status


def _run(address: str | None, work: Callable[[dict[str, float]], int]) -> tuple[int | None, Interruption]:
    """The work's exit status, None when a signal stopped it; and the signal."""
    resources = cluster.connect(address)
    status = None
    with stop_cleanly_on_signals() as interruption:
        try:
            status = work(resources)
        except KeyboardInterrupt:
            if interruption.signum is None:
                raise
        finally:
            interruption.ending = True  # a signal now is noted, not acted on
            cluster.shutdown()
    return (None if interruption.signum is not None else status), interruption
