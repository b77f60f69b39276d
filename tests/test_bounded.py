"""collatz_ray._bounded, the one reader of files from storage: only regular files (a
FIFO answers at once, a device is never read, a link out of the experiment is refused),
a size per kind, lines one at a time with overlong ones passed over, and JSON nested
too deep refused before the parser recurses."""

from __future__ import annotations

import io
import json
import os

import pytest

from collatz_ray._bounded import (
    MAX_JSON_DEPTH,
    Unreadable,
    json_depth,
    lines,
    loads,
    open_regular,
    read_bytes,
    read_json,
    skip_to_tail,
)


def test_a_regular_file_is_read_up_to_its_limit(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"a": [1, 2]}')
    assert read_json(path, limit=13) == {"a": [1, 2]}
    with pytest.raises(Unreadable, match="larger than 12 bytes"):
        read_bytes(path, limit=12)
    with pytest.raises(FileNotFoundError):
        read_bytes(tmp_path / "absent", limit=10)


def test_a_fifo_a_device_and_a_directory_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: a blocking open would wait forever
    (tmp_path / "zero").symlink_to("/dev/zero")
    for path in (fifo, tmp_path / "zero", tmp_path):
        with pytest.raises(Unreadable, match="not a regular file"):
            read_bytes(path, limit=10)


def test_a_link_out_of_the_root_is_refused_and_one_inside_is_followed(tmp_path):
    outside = tmp_path / "secret.json"
    outside.write_text("{}")
    root = tmp_path / "experiment"
    root.mkdir()
    (root / "inside.json").write_text("[]")
    (root / "out.json").symlink_to(outside)
    (root / "in.json").symlink_to(root / "inside.json")
    with pytest.raises(Unreadable, match="outside"):
        read_json(root / "out.json", limit=10, root=root)
    assert read_json(root / "in.json", limit=10, root=root) == []
    assert read_json(root / "out.json", limit=10) == {}  # no root: any regular file


def test_depth_is_counted_without_parsing_and_strings_do_not_nest():
    assert json_depth('{"a": [[1], {"b": "[[[[{{"}]}') == 3
    assert loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ValueError, match=f"nested deeper than {MAX_JSON_DEPTH}"):
        loads(deep)  # json.loads would end in a RecursionError
    with pytest.raises(ValueError, match="nested deeper"):
        loads('{"n": "1", "x": ' + "[" * 100_000)  # cut short, still refused by depth
    assert loads(json.dumps({"s": '"\\[' * 50})) == {"s": '"\\[' * 50}


def test_lines_pass_over_an_overlong_line_and_stop_at_the_limit():
    data = b"short\n" + b"x" * 100 + b"\nnext\nlast"
    got = list(lines(io.BytesIO(data), max_line=10))
    assert [(x.number, x.text, x.ended) for x in got] == [
        (1, "short", True),
        (2, None, True),
        (3, "next", True),
        (4, "last", False),
    ]
    # Where the limit cuts a line, it comes as a line without its end (as a torn one would).
    cut = [(x.text, x.ended) for x in lines(io.BytesIO(data), max_line=10, limit=8)]
    assert cut == [("short", True), ("xx", False)]


def test_the_tail_of_a_large_file_starts_at_a_whole_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"".join(b"%05d\n" % i for i in range(1000)))
    with open_regular(path) as handle:
        passed = skip_to_tail(handle, keep=20)
        assert passed == path.stat().st_size - 18
        assert [x.text for x in lines(handle, max_line=100)] == ["00997", "00998", "00999"]
    with open_regular(path) as handle:
        assert skip_to_tail(handle, keep=10**6) == 0
