"""Every line a command prints for a person fits 120 columns (paths excepted), and no
Python repr ({'a': 1}, ['x'], None, True, PosixPath(...)) reaches them (issue 17).

The commands run in this process on small real inputs: experiments and replications
written by hand (support/experiments.py), the session's smoke search (its `tune` output
as conftest kept it) and a tiny training run. No search runs here; a real replication's
output is held to the same rule in tests/e2e/test_replicate_ray.py.
"""

from __future__ import annotations

import pytest
from support.clitools import run_command
from support.experiments import replication_experiment, search_experiment, write_trial
from support.width import overlong, python_reprs, unwrapped

#: Settings whose label is long: a replication's report once printed it in a table row.
LONG = {"lookahead": 20, "target_type": "split", "mine_negatives": True, "mine_interval": 20}
SHORT = {"lookahead": 10, "target_type": "fixed", "mine_negatives": False}
COMMANDS = ("tune", "replicate", "train", "evaluate", "evalset", "verify", "bench", "bench_search", "results")


def assert_readable(text: str, *, markdown: bool = False) -> None:
    """No line too wide (a markdown table's rows excepted: markdown needs them whole),
    no repr."""
    too_wide = overlong(text, skip="|" if markdown else None)
    assert not too_wide, "lines over 120 columns:\n" + "\n".join(too_wide)
    reprs = python_reprs(text)
    assert not reprs, "Python reprs:\n" + "\n".join(reprs)


def assert_summaries_readable(experiment) -> str:
    """`results` on the experiment, as the table and as markdown; the table's text."""
    texts = {}
    for form in ("table", "md"):
        outcome = run_command("results", experiment, "--format", form)
        assert outcome.status == 0, outcome.stderr
        assert_readable(outcome.stdout, markdown=form == "md")
        assert_readable(outcome.stderr)
        texts[form] = outcome.stdout
    return texts["table"]


def test_a_replication_s_report_fits(tmp_path, capsys):
    from collatz_ray.replicate import print_summary

    path = replication_experiment(tmp_path / "rep", [(LONG, [10, 12, 11]), (SHORT, [20, 22, None])])
    assert print_summary(str(path)) == 0
    out = capsys.readouterr().out
    assert "Seed replicates" in out and "Lead of" in out
    assert_readable(out)
    assert "Seed replicates" in assert_summaries_readable(path)


def test_a_replication_s_plan_fits(tmp_path):
    source = search_experiment(tmp_path / "results" / "src")
    write_trial(source, "long", params=LONG, violations=8)
    write_trial(source, "short", params=SHORT, violations=12)
    outcome = run_command(
        "replicate", "src", "--top", "2", "--seeds", "3", "--storage", tmp_path / "results", "--dry-run"
    )
    assert outcome.status == 0, outcome.stderr
    assert "mine_negatives=true" in outcome.stdout
    assert_readable(outcome.stdout)


def test_a_search_with_long_errors_fits(tmp_path):
    """A trial's error is as long as the exception made it; the trials table, the errors
    and the comparison wrap within their columns."""
    path = search_experiment(tmp_path / "search")
    write_trial(path, "long", params=LONG, violations=8)
    write_trial(path, "short", params=SHORT, violations=12)
    error = "RuntimeError: " + " ".join(f"frame {i} of a long chain of causes" for i in range(12))
    write_trial(path, "failed", params=SHORT, violations=30, epoch=20, error=error, done=False)
    table = assert_summaries_readable(path)
    errors = table[table.index("Trials with errors") :]
    assert error[:150] in unwrapped(errors)  # the error, wrapped in its column


def test_the_smoke_search_and_its_summary_fit(smoke_experiment):
    """What `tune` printed (plan, status blocks, best trial), and the results of it."""
    assert_readable((smoke_experiment.parent / "tune.out").read_text())
    assert_summaries_readable(smoke_experiment)


def test_training_evaluation_and_the_evaluation_set_fit(tmp_path, eval_csv):
    run = tmp_path / "run"
    trained = run_command(
        "train",
        "--smoke",
        "--layers",
        "8",
        "--epochs",
        "20",
        "--eval-interval",
        "10",
        "--eval-csv",
        eval_csv,
        "--out",
        run,
    )
    assert trained.status == 0, trained.stderr
    evaluated = run_command("evaluate", "--checkpoint", run, "--eval-csv", eval_csv)
    assert evaluated.status == 0, evaluated.stderr
    checked = run_command("evalset", "--check", eval_csv)
    assert checked.status == 0, checked.stderr
    for outcome in (trained, evaluated, checked):
        assert_readable(outcome.stdout + outcome.stderr)


def test_bench_fits():
    outcome = run_command("bench", "--quick", "--only", "features", "--device", "cpu")
    assert outcome.status == 0, outcome.stderr
    assert "equality checks" in outcome.stdout
    assert_readable(outcome.stdout + outcome.stderr)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_fits_a_wide_terminal(command, monkeypatch):
    """argparse takes the whole width of a wide terminal; --help keeps to 120 columns."""
    monkeypatch.setenv("COLUMNS", "300")
    outcome = run_command(command, "--help")
    assert outcome.status == 0, outcome.stderr
    assert outcome.stdout.startswith("usage:")
    assert_readable(outcome.stdout)
