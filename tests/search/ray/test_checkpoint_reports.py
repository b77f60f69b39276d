"""The reports a trial's checkpoint carries, read back when the trial restarts: a damaged
file costs the replay, never the trial."""

from __future__ import annotations

import os

import pytest

from collatz_ray.search.ray.worker import MAX_REPORTS_BYTES, REPORTS_FILE, read_reports, write_reports


def test_what_is_written_is_read_back(tmp_path):
    reports = [{"epoch": 20, "objective": 1.5}, {"epoch": 40, "objective": 1.2}]
    write_reports(tmp_path / REPORTS_FILE, "run-1", reports)
    assert read_reports(tmp_path / REPORTS_FILE) == ("run-1", reports)


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not json\n",
        '{"search_run": "r"}\n{"epoch": 2\n',
        '[1, 2]\n{"epoch": 2}\n',
        '{"search_run": "r"}\n"text"\n',
        "[" * 100000 + "]" * 100000 + "\n",
    ],
)
def test_a_damaged_file_is_no_reports(tmp_path, content):
    path = tmp_path / REPORTS_FILE
    path.write_text(content)
    assert read_reports(path) == (None, [])


def test_a_file_past_the_bound_or_not_a_file_is_not_read(tmp_path):
    big = tmp_path / REPORTS_FILE
    with open(big, "wb") as handle:
        handle.truncate(MAX_REPORTS_BYTES + 1)
    assert read_reports(big) == (None, [])
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert read_reports(fifo) == (None, [])  # never blocks on a FIFO
    assert read_reports(tmp_path / "absent") == (None, [])
