"""`python -m collatz_ray.bench_search` at its smallest: one plain and one collatz trial on
a real embedded Ray, and the same training without Ray, in the same run."""

from __future__ import annotations

import json
import math

from collatz_ray.bench_search import main


def test_one_trial_of_each_kind_gives_every_figure(capsys):
    assert main(["--trials", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in ("plain_wall_median", "ours_wall_median", "trainer_alone_median", "ours_time_to_first_report"):
        assert figures[key] > 0, (key, figures)
    # The collatz trial does the plain trial's work and trains: it cannot cost less.
    assert figures["ratio_median"] > 1
    # Five reports, four gaps between them: a finite median cost per report.
    assert math.isfinite(figures["ours_report_overhead_median"])
    assert figures["ours_trainer_seconds_to_first_report"] < figures["ours_time_to_first_report"]
