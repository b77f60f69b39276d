"""The session's check that the user's Ray directory is left as it was
(tests/support/raytmp.py), on directories made here: it sees a new session, a moved
link and a new current cluster, and finds Ray's directory where Ray does."""

from __future__ import annotations

import os
from pathlib import Path

from support.raytmp import changes, ray_dir, snapshot


def test_ray_dir_follows_rays_own_rule():
    assert ray_dir({}) == Path("/tmp/ray")
    assert ray_dir({"TMPDIR": "/var/t"}) == Path("/var/t/ray")
    assert ray_dir({"TMPDIR": "/var/t", "RAY_TMPDIR": "/r"}) == Path("/r/ray")


def test_every_change_a_test_could_leave_is_seen(tmp_path):
    ray = tmp_path / "ray"
    assert snapshot(ray) == {}
    (ray / "session_1_100").mkdir(parents=True)
    (ray / "session_latest").symlink_to(ray / "session_1_100")
    before = snapshot(ray)
    assert changes(before, snapshot(ray)) == []

    (ray / "session_2_200").mkdir()
    os.replace(_link(ray, "session_2_200"), ray / "session_latest")
    (ray / "ray_current_cluster").write_text("127.0.0.1:6379")
    found = changes(before, snapshot(ray))
    assert "new: session_2_200" in found and "new: ray_current_cluster (content)" in found
    assert any(line.startswith("changed: session_latest") for line in found), found

    later = snapshot(ray)
    (ray / "ray_current_cluster").write_text("127.0.0.1:6380")
    assert changes(later, snapshot(ray)) == [
        "changed: ray_current_cluster (content) ('127.0.0.1:6379' -> '127.0.0.1:6380')"
    ]


def _link(ray: Path, target: str) -> Path:
    link = ray / "new_link"
    link.symlink_to(ray / target)
    return link
