"""A command's time on Ray: start or join it, run the work with Ctrl-C and SIGTERM
stopping Tune cleanly (interrupt.py), and shut Ray down however the work ends."""

from __future__ import annotations

from typing import Callable

from collatz_ray.search.ray import cluster
from collatz_ray.search.ray.interrupt import Interruption, stop_cleanly_on_signals


def on_ray(address: str | None, work: Callable[[dict[str, float]], int]) -> tuple[int | None, Interruption]:
    """work(the cluster's resources) on the embedded Ray or the cluster at `address`.
    Returns its exit status (None when a signal stopped it) and the interruption, whose
    `signum` is set when one did."""
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
