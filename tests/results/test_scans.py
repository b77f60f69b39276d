"""collatz_ray/results/scans.py: rank correlations with their bootstrap intervals, each
configuration's scan rate over its seeds against the largest model, and the Pareto
front, read from an experiment and scan files written by hand."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from support.experiments import replication_experiment, write_trial

from collatz_ray.errors import UsageError
from collatz_ray.results.read import load_experiment
from collatz_ray.results.scans import (
    SCAN_FORMAT,
    bootstrap_interval,
    configurations,
    correlations,
    pareto_front,
    ranks,
    read_scans,
    render_markdown,
    scan_file,
    smallest_not_worse,
    spearman,
)


def test_ranks_share_ties_and_spearman_is_pearson_of_the_ranks():
    assert ranks([10, 30, 20, 30]) == [1.0, 3.5, 2.0, 3.5]
    xs, ys = [1, 2, 3, 4, 5], [5, 6, 7, 8, 7]
    assert spearman(xs, ys) == pytest.approx(statistics.correlation([1, 2, 3, 4, 5], [1, 2, 3.5, 5, 3.5]))
    assert spearman(xs, [v * v for v in xs]) == pytest.approx(1.0)
    assert spearman(xs, [-v for v in xs]) == pytest.approx(-1.0)
    assert spearman(xs, [4] * 5) is None
    assert spearman([1, 2], [2, 1]) is None


def test_the_bootstrap_interval_is_repeatable_and_holds_the_estimate():
    xs = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7]
    ys = [2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0]
    low, high = bootstrap_interval(xs, ys)
    assert (low, high) == bootstrap_interval(xs, ys)
    assert low < spearman(xs, ys) < high
    assert high - low > 0.3  # fourteen noisy pairs say little
    assert bootstrap_interval(list(range(10)), list(range(10))) == (1.0, 1.0)


#: Three sizes over three seeds: (parameters, range-scan violation rates per seed).
SIZES = {
    "small": (100, [0.30, 0.31, 0.29]),
    "middle": (1000, [0.105, 0.10, 0.095]),
    "large": (10000, [0.10, 0.11, 0.09]),
}


def write_scan(experiment: Path, trial_id: str, *, parameters: int, rate: float, layers: list[int]) -> None:
    numbers = 100_000
    scan_file(experiment, trial_id).parent.mkdir(exist_ok=True)
    scan_file(experiment, trial_id).write_text(
        json.dumps(
            {
                "format": SCAN_FORMAT,
                "trial": trial_id,
                "epoch": 60,
                "parameters": parameters,
                "model": {"layers": layers, "lookahead": 5, "linear": not layers},
                "scans": {
                    "range": {
                        "range": ["3", "200003"],
                        "numbers": numbers,
                        "violations": round(rate * numbers),
                    },
                    "random": {
                        "random": [[64, 1000]],
                        "seed": 0,
                        "buckets": [{"bits": 64, "numbers": 1000, "violations": round(rate * 2000)}],
                    },
                },
            }
        )
    )


@pytest.fixture
def scanned(tmp_path):
    """A replication of three model sizes (each its own configuration), every trial
    scanned; the held-out count rises with the scan rate, the pass rate falls."""
    results = [({"lookahead": lookahead}, [0, 0, 0]) for lookahead in (5, 10, 20)]
    path = replication_experiment(tmp_path / "rep", results)
    for i, (parameters, rates) in enumerate(SIZES.values()):
        for seed, rate in zip((1, 2, 3), rates):
            write_scan(path, f"c{i}s{seed}", parameters=parameters, rate=rate, layers=[parameters // 100])
            trial = path / f"collatz_trial_c{i}s{seed}"
            lines = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
            lines[-1].update(traj_total_violations=round(1000 * rate), pass_rate=100 - 100 * rate)
            (trial / "result.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return read_scans([load_experiment(path)])


def test_configurations_are_judged_against_the_largest_by_welch(scanned):
    configs = configurations(scanned)
    assert [c.parameters for c in configs] == [100, 1000, 10000]
    small, middle, large = configs
    assert small.against_largest.beyond_noise  # 0.30 against 0.10: worse
    assert not middle.against_largest.beyond_noise
    assert middle.against_largest.difference == pytest.approx(0.0)
    assert large.against_largest is None
    assert small.rate.mean == pytest.approx(0.30)
    assert smallest_not_worse(configs) is middle
    assert large.largest and not middle.largest


def test_a_configuration_of_one_seed_is_not_judged_against_the_largest(scanned):
    """A tiny model with one lucky seed is no answer to 'how small can V be'."""
    experiment = scanned[0].experiment.path
    write_trial(experiment, "lucky", params={"lookahead": 20, "target_type": "fixed"}, violations=0)
    write_scan(experiment, "lucky", parameters=10, rate=0.05, layers=[])
    configs = configurations(read_scans([load_experiment(experiment)]))
    assert configs[0].parameters == 10 and configs[0].against_largest is None
    assert smallest_not_worse(configs).parameters == 1000


def test_the_pareto_front_keeps_only_models_that_lower_the_rate(scanned):
    front = pareto_front(scanned)
    assert [(s.parameters, s.range_rate()) for s in front] == [(100, 0.29), (1000, 0.095), (10000, 0.09)]


def test_correlations_name_each_predictor_with_its_sign(scanned):
    by_label = {c.label: c for c in correlations(scanned)}
    assert by_label["log's 429 steps"].rho == pytest.approx(1.0)
    assert by_label["evaluation set pass %"].rho == pytest.approx(-1.0)
    assert by_label["log's 429 steps"].models == 9
    # The fixture's unseen counts are all 0: a count that ranks nothing has no correlation.
    assert by_label["unseen 158 steps"].rho is None
    sample = {c.label: c for c in correlations(scanned, target="64")}
    assert sample["log's 429 steps"].rho == pytest.approx(1.0)


def test_the_report_names_the_smallest_size_not_worse_than_the_largest(scanned):
    text = render_markdown(scanned)
    assert "9 scanned models; each scan: every odd n in [3, 200003)" in text
    assert (
        "Smallest not worse than the largest beyond seed noise: 10 (lookahead=10), 1,000 parameters." in text
    )
    assert "| 64-bit sample |" in text.replace("64-bit sample | ", "64-bit sample |")
    assert "| log's 429 steps | 1.00 (1.00..1.00), n=9 |" in text


def test_a_damaged_scan_file_is_one_line_naming_it(scanned):
    experiment = scanned[0].experiment.path
    scan_file(experiment, "c0s1").write_text("{not json")
    with pytest.raises(UsageError, match="c0s1.json: not a scan file"):
        read_scans([load_experiment(experiment)])


@pytest.mark.parametrize("kind", ["garbage", "deep", "too large", "fifo", "wrong format"])
def test_a_bad_scan_file_is_one_line_naming_it(tmp_path, kind):
    import os

    from collatz_ray._bounded import MAX_SCAN_BYTES
    from collatz_ray.results.scans import read_scan

    path = tmp_path / "scan.json"
    if kind == "garbage":
        path.write_bytes(b"\x00\xff{not json")
    elif kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "too large":
        with open(path, "wb") as handle:
            handle.truncate(MAX_SCAN_BYTES + 1)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.write_text(json.dumps({"format": -1}))
    with pytest.raises(UsageError) as refused:
        read_scan(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)
