"""The live status block a person watches: states that explain an empty row, the best
so far, at most 120 columns, and the seed of a replication's trials. Rendered from
trials as Tune hands them to its reporter (id, status, config, last result)."""

from __future__ import annotations

from types import SimpleNamespace

from collatz_ray.search.ray.status import WIDTH, SearchStatus


def trial(trial_id: str, status: str, config: dict, result: dict | None = None):
    return SimpleNamespace(trial_id=trial_id, status=status, config=config, last_result=result or {})


def report(epoch: int, violations: int, objective: float) -> dict:
    return {
        "epoch": epoch,
        "traj_total_violations": violations,
        "traj_total_steps": 429,
        "pass_rate": 60.0,
        "growth_weighted_pass_rate": 55.0,
        "objective": objective,
    }


def render(trials, parameters, **kwargs) -> list[str]:
    status = SearchStatus(parameters=parameters, header="search s", rungs=[20, 40], per_trial="1 at once")
    return status.render(trials, **kwargs).splitlines()


def rows(lines: list[str]) -> dict[str, list[str]]:
    header = lines.index(next(line for line in lines if line.startswith("trial ")))
    return {line.split()[0]: line.split() for line in lines[header + 1 :] if line.strip()}


def test_a_running_trial_is_starting_until_it_reports_then_training():
    lines = render(
        [
            trial("aaaaaaaa1", "RUNNING", {"lookahead": 10}),
            trial("bbbbbbbb2", "RUNNING", {"lookahead": 20}, report(40, 58, 58.2)),
            trial("cccccccc3", "TERMINATED", {"lookahead": 5}, report(60, 70, 70.3)),
            trial("dddddddd4", "PENDING", {"lookahead": 100}),
        ],
        ["lookahead"],
    )
    by_id = rows(lines)
    assert [by_id[t][1] for t in ("aaaaaaaa", "bbbbbbbb", "cccccccc", "dddddddd")] == [
        "starting",
        "training",
        "finished",
        "pending",
    ]
    assert "Trials: 1 finished, 1 pending, 1 starting, 1 training" in lines[2]
    # The best so far is judged at the furthest epoch any trial reached.
    assert "best so far cccccccc: 70/429 violations at epoch 60" in lines[2]
    assert lines[1].startswith("ASHA rungs at epochs 20, 40; ")


def test_a_replication_shows_each_trial_s_seed():
    lines = render(
        [
            trial("aaaaaaaa1", "RUNNING", {"seed": 1, "lookahead": 10}, report(20, 80, 80.1)),
            trial("bbbbbbbb2", "RUNNING", {"seed": 2, "lookahead": 10}, report(20, 75, 75.1)),
        ],
        ["seed", "lookahead"],
    )
    header = next(line for line in lines if line.startswith("trial "))
    assert header.split()[:4] == ["trial", "state", "seed", "la"]
    assert [row[2] for row in rows(lines).values()] == ["1", "2"]


def test_many_settings_stay_within_the_width_and_say_what_is_hidden():
    parameters = [f"setting_{i}" for i in range(30)]
    config = {p: 123456.789 for p in parameters}
    lines = render([trial("aaaaaaaa1", "RUNNING", config, report(20, 80, 80.1))], parameters, done=True)
    assert all(len(line) <= WIDTH for line in lines), max(map(len, lines))
    assert lines[0].endswith(" done ==")
    hidden = [line for line in lines if line.startswith("(+")]
    assert hidden and "searched settings not shown: python -m collatz_ray.results lists all" in hidden[0]
