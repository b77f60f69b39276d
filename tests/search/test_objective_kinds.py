"""A space chooses which violation count the search minimises (`objective:` in its YAML):
the log's (default, so old spaces keep their meaning), the unseen steps', the large
numbers' or the evaluation set's failures. The choice is checked at load time and
survives smoke() and budget overrides."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from collatz_ray.errors import UsageError
from collatz_ray.search.objective import OBJECTIVES, objective
from collatz_ray.search.settings import SearchSettings
from collatz_ray.search.spaces import SPACES_DIR, load_space

METRICS = {
    "traj_total_violations": 58,
    "traj_unseen_violations": 9,
    "traj_big_violations": 700,
    "eval_violations": 1200,
    "margin_5pct": 0.0,
}


@pytest.mark.parametrize("kind, count", [("log", 58), ("unseen", 9), ("big", 700), ("eval", 1200)])
def test_each_kind_counts_its_own_violations_with_the_same_tie_break(kind, count):
    assert objective(METRICS, kind=kind) == pytest.approx(count + 0.5)
    assert objective({**METRICS, "margin_5pct": 1.0}, kind=kind) == pytest.approx(count + 0.25)


def test_the_default_is_the_logs_count():
    assert objective(METRICS) == objective(METRICS, kind="log")


def space_file(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        {extra}
        budget: {{epochs: 40, eval_interval: 20, grace_epochs: 20, reduction_factor: 2, num_samples: 2}}
        fixed: {{layers: [16, 16]}}
        parameters:
          lookahead: {{values: [5, 10]}}
        """)
    )
    return path


@pytest.mark.parametrize("kind", list(OBJECTIVES))
def test_a_space_chooses_its_objective_and_keeps_it(tmp_path, kind):
    space = load_space(space_file(tmp_path, f"objective: {kind}"))
    assert space.objective == kind
    assert space.smoke().objective == kind
    assert space.with_budget(num_samples=1).objective == kind
    settings = SearchSettings(
        space=space,
        storage=str(tmp_path),
        experiment="x",
        cpus_per_trial=1,
        gpus_per_trial=0,
        seed=0,
        max_concurrent=1,
    )
    assert json.loads(json.dumps(settings.to_json()))["objective"] == kind


def test_spaces_without_the_key_keep_the_logs_objective(tmp_path):
    assert load_space(space_file(tmp_path, "")).objective == "log"
    for path in sorted(SPACES_DIR.glob("*.yaml")):
        assert load_space(path).objective == "log", path.name


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("unsen", "did you mean 'unseen'"),
        ("[log]", "unknown objective"),
        ("total", "expected one of: log, unseen, big, eval"),
    ],
)
def test_an_unknown_objective_is_refused_in_one_line(tmp_path, value, fragment):
    with pytest.raises(UsageError) as info:
        load_space(space_file(tmp_path, f"objective: {value}"))
    message = str(info.value)
    assert "space.yaml: objective: " in message and fragment in message
    assert "\n" not in message
