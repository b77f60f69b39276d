"""collatz_ray/_atomic.py: a file is replaced whole or not at all, at either durability."""

from __future__ import annotations

import pytest

from collatz_ray._atomic import atomic_file, write_atomically


@pytest.mark.parametrize("durable", [True, False])
def test_a_file_is_replaced_whole_and_no_temporary_is_left(tmp_path, durable):
    target = tmp_path / "settings.json"
    write_atomically(target, b'{"a": 1}', durable=durable)
    write_atomically(target, '{"a": 2}', durable=durable)
    assert target.read_bytes() == b'{"a": 2}'
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_text_is_written_as_is(tmp_path):
    target = tmp_path / "rows.csv"
    write_atomically(target, "n,t1\r\n3,5\r\n", durable=True)  # a CSV's CRLF is its content
    assert target.read_bytes() == b"n,t1\r\n3,5\r\n"


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_write_that_fails_leaves_the_old_file(tmp_path, error):
    target = tmp_path / "scan.json"
    target.write_text("old")
    with pytest.raises(error), atomic_file(target, durable=True, text=True) as handle:
        handle.write("half of the new")
        raise error
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_concurrent_writers_use_their_own_temporary_files(tmp_path):
    target = tmp_path / "evalset.csv"
    with atomic_file(target, durable=False) as first, atomic_file(target, durable=False) as second:
        assert first.name != second.name
        first.write(b"first")
        second.write(b"second")
    assert target.read_bytes() == b"first"  # the last to finish wins, whole
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
