"""The chunks of a `python -m collatz_ray.verify` scan as Ray tasks, across a cluster.

Only the distribution lives here; collatz_ray.trainer.scan does the scanning. The
weights go into the object store once; each task rebuilds the model, scans one chunk on
one GPU when the cluster has GPUs (else on one CPU, one torch thread) and returns the
chunk's result. The driver keeps every slot busy and yields results as they arrive, in
any order: chunk results merge in any order, and the command records each one in the
progress file, so a cluster scan resumes like a local one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import ray

from collatz_ray.search.ray.cluster import connect
from collatz_ray.syracuse.features import FeatureSpec
from collatz_ray.trainer.loading import LoadedModel
from collatz_ray.trainer.scan import Scan


def scan_on_ray(
    address: str | None,
    loaded: LoadedModel,
    spec: FeatureSpec,
    scan: Scan,
    chunks: Iterable[tuple[int, tuple]],
    *,
    keep: int,
    num_cpus: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Each (index, chunk)'s result, as tasks finish. `address` None starts an embedded
    Ray of `num_cpus` CPUs (tests); otherwise joins the cluster there."""
    resources = connect(address, num_cpus=num_cpus)
    gpus = int(resources.get("GPU", 0))
    slots = gpus or max(1, int(resources.get("CPU", 1)))
    task = _scan_chunk_task.options(num_cpus=1, num_gpus=1 if gpus else 0)
    weights = ray.put({k: v.cpu() for k, v in loaded.model.state_dict().items()})
    config = loaded.config.to_dict()
    todo = iter(chunks)
    running: list[ray.ObjectRef] = []
    while True:
        for index, chunk in todo:
            running.append(
                task.remote(  # type: ignore[call-arg]  # see @ray.remote below
                    weights, config, spec, chunk, index=index, seed=scan.seed, keep=keep, gpu=bool(gpus)
                )
            )
            if len(running) >= slots:
                break
        if not running:
            return
        ready, running = ray.wait(running, num_returns=1)
        yield ray.get(ready[0])


# Ray's typing of remote functions knows positional arguments only, not keyword-only ones.
@ray.remote  # type: ignore[arg-type]
def _scan_chunk_task(
    weights: dict,
    config: dict[str, Any],
    spec: FeatureSpec,
    chunk: tuple,
    *,
    index: int,
    seed: int,
    keep: int,
    gpu: bool,
) -> dict[str, Any]:
    import torch

    from collatz_ray.trainer.config import TrainConfig
    from collatz_ray.trainer.model import build_model
    from collatz_ray.trainer.scan import scan_chunk

    torch.set_num_threads(1)
    device = torch.device("cuda" if gpu else "cpu")
    model = build_model(TrainConfig.from_dict(config, source="verify task"))
    model.load_state_dict(weights)
    return scan_chunk(model.to(device), spec, chunk, index=index, seed=seed, keep=keep, device=device)
