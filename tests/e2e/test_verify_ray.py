"""The verify scan's chunks as Ray tasks (collatz_ray.search.ray.scan_tasks) give what the
local scan gives: one embedded Ray of one CPU, two chunks."""

from __future__ import annotations

import pytest
import torch

from collatz_ray.syracuse.features import FeatureSpec
from collatz_ray.trainer.config import TrainConfig
from collatz_ray.trainer.loading import LoadedModel
from collatz_ray.trainer.model import build_model
from collatz_ray.trainer.scan import Scan, Summary, scan_locally


@pytest.fixture
def embedded_ray():
    from collatz_ray.search.ray import cluster

    yield
    cluster.shutdown()


def summary_of(results) -> dict:
    summary = Summary(keep=5)
    for result in results:
        summary.add(result)
    out = summary.to_json()
    out.pop("scan_seconds")
    return out


def test_two_chunks_on_an_embedded_ray_match_the_local_scan(embedded_ray, tmp_path):
    from collatz_ray.search.ray.scan_tasks import scan_on_ray

    config = TrainConfig(layers=(8,), lookahead=5, device="cpu")
    torch.manual_seed(0)
    loaded = LoadedModel(build_model(config), config, tmp_path / "model.pth")
    spec = FeatureSpec(5)
    scan = Scan(start=2**70, stop=2**70 + 4000, chunk=1000)
    chunks = list(enumerate(scan.chunks()))[:2]
    on_ray = list(scan_on_ray(None, loaded, spec, scan, chunks, keep=5, num_cpus=1))
    assert sorted(r["index"] for r in on_ray) == [0, 1]
    local = scan_locally(loaded.model, spec, scan, chunks, keep=5, device=torch.device("cpu"))
    assert summary_of(on_ray) == summary_of(local)
