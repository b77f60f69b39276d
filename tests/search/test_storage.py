"""Which storage and names a search accepts, and how its settings are kept on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collatz_ray.errors import UsageError
from collatz_ray.search.settings import SETTINGS_FILE, load_settings_json
from collatz_ray.search.storage import check_name, check_storage, resolve_storage


def test_local_storage_is_refused_on_a_multi_node_cluster(tmp_path):
    with pytest.raises(UsageError, match="2-node cluster"):
        check_storage(str(tmp_path), creating=False, nodes=2)
    check_storage(str(tmp_path), creating=False, nodes=2, declared_shared=True)
    check_storage("s3://bucket/prefix", creating=False, nodes=2)
    check_storage(str(tmp_path), creating=False, nodes=1)


def test_storage_resolves_to_an_absolute_path_or_a_known_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_storage("results") == str(tmp_path / "results")
    assert resolve_storage(f"file://{tmp_path}/x") == str(tmp_path / "x")
    assert resolve_storage("s3://bucket/collatz") == "s3://bucket/collatz"
    assert resolve_storage("gs://bucket/collatz") == "gs://bucket/collatz"


@pytest.mark.parametrize("storage", ["bogus://x", "http://example.org/x", "ftp://h/p"])
def test_an_unknown_scheme_is_one_line(storage):
    with pytest.raises(UsageError, match="unknown scheme") as info:
        resolve_storage(storage)
    assert "\n" not in str(info.value)


def test_a_symlink_loop_is_one_line(tmp_path):
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    with pytest.raises(UsageError, match="cannot be resolved"):
        resolve_storage(str(loop / "results"))


@pytest.mark.parametrize("name", ["lookahead-20261125-101500", "k1", "a.b_c-d", "9"])
def test_good_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["../x", "/abs/path", "a/b", ".", "..", ".hidden", "", "x" * 201, "sp ace", "new\nline"]
)
def test_names_that_would_leave_storage_are_refused(name):
    with pytest.raises(UsageError, match="--name") as info:
        check_name(name)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text", ["", '{"space_name": "smo', "[1, 2]", "\xff\xfe", '{"seed": "x"}', '{"budget": 3}']
)
def test_a_damaged_settings_file_is_one_line(tmp_path, text):
    experiment = tmp_path / "exp"
    experiment.mkdir()
    (experiment / SETTINGS_FILE).write_bytes(text.encode("latin-1"))
    with pytest.raises(UsageError) as info:
        load_settings_json(str(tmp_path), "exp")
    message = str(info.value)
    assert "\n" not in message and SETTINGS_FILE in message


def test_no_settings_file_is_none(tmp_path):
    assert load_settings_json(str(tmp_path), "nothing") is None
    assert Path(tmp_path).exists()
