"""The embedded Ray's token file is its user's alone."""

from __future__ import annotations

import os
import stat

import pytest

from collatz_ray.search.ray import cluster


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    return tmp_path


def test_a_missing_token_is_created_0600(home):
    cluster._private_token_file()
    token = home / ".ray" / "auth_token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert len(token.read_text()) == 64 and int(token.read_text(), 16) >= 0


def test_a_token_others_can_read_is_tightened_and_kept(home):
    token = home / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("ab" * 32)
    os.chmod(token, 0o644)
    cluster._private_token_file()
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert token.read_text() == "ab" * 32
