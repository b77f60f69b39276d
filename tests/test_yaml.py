"""collatz_ray._yaml: config files and search spaces are read through one bounded loader,
so a hostile or broken YAML file is one line, at once, never a hang."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.hostile import billion_laughs

from collatz_ray._yaml import MAX_BYTES, MAX_DEPTH, load_yaml
from collatz_ray.errors import UsageError


def refused(path: Path, *fragments: str) -> str:
    start = time.monotonic()
    with pytest.raises(UsageError) as info:
        load_yaml(path)
    assert time.monotonic() - start < 2
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


BAD = {
    "bomb.yaml": (billion_laughs().encode(), ["line 5", "aliases expand to more than"]),
    "recursive.yaml": (b"a: &a [1, *a]\n", ["recursive alias"]),
    "deep-flow.yaml": (b"[" * 5000 + b"]" * 5000, [f"nested deeper than {MAX_DEPTH} levels"]),
    "deep-block.yaml": ("".join("  " * i + f"k{i}:\n" for i in range(60)).encode(), ["nested deeper"]),
    "duplicate.yaml": (b"lr: 0.1\nepochs: 3\nlr: 0.2\n", ["line 3, column 1", "duplicate key 'lr'"]),
    "long-int.yaml": (b"seed: " + b"7" * 5000 + b"\n", ["line 1, column 7", "integer too long"]),
    "no-date.yaml": (b"when: 2024-13-45\n", ["not a date"]),
    "latin1.yaml": ("lr: 0.1  # d\xe9j\xe0\n".encode("latin-1"), ["not UTF-8"]),
    "huge.yaml": (b"# padding\n" * (MAX_BYTES // 10 + 1), [f"larger than {MAX_BYTES} bytes"]),
    "nul.yaml": (b"lr: \x00\n", ["not valid YAML"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_yaml_is_one_line_at_once(tmp_path, name):
    data, fragments = BAD[name]
    path = tmp_path / name
    path.write_bytes(data)
    assert len(billion_laughs()) < 500
    refused(path, *fragments)


def test_a_directory_and_a_missing_file(tmp_path):
    refused(tmp_path, "is a directory")
    refused(tmp_path / "absent.yaml", "not found")


def test_ordinary_aliases_and_every_shipped_space_still_load(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("layers: &stack [64, 64]\nother: *stack\nwhen: 2024-02-03\n")
    assert load_yaml(path)["other"] == [64, 64]
    for space in Path(__file__).resolve().parents[1].joinpath("search_spaces").glob("*.yaml"):
        assert isinstance(load_yaml(space), dict)
