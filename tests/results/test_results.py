"""python -m collatz_ray.results on a real experiment (one smoke search per session, see
conftest.smoke_experiment), and on copies of it changed the way real ones end up: a
result line caught mid-write, an errored trial, a lost experiment state."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from support.searches import read_reports
from support.width import unwrapped

import collatz_ray.results.__main__ as results
from collatz_ray.search.failures import error_line
from collatz_ray.trainer.config import TrainConfig

RESULTS = [sys.executable, "-m", "collatz_ray.results"]
METRIC_KEYS = (
    "traj_total_violations",
    "traj_total_steps",
    "pass_rate",
    "weighted_pass_rate",
    "growth_pass_rate",
    "growth_weighted_pass_rate",
    "growth_margin_mean",
    "growth_margin_min",
    "margin_mean",
    "margin_median",
    "margin_min",
    "margin_5pct",
)
RAY_ERROR = (
    "Failure # 1 (occurred at 2026-11-25_20-57-11)\n"
    "\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=17038, ip=127.0.0.1, repr=collatz_trial)\n"
    '  File "collatz_ray/search/ray/trial.py", line 72, in collatz_trial\n'
    "    trainer.fit()\n"
    "ray.train.ControllerError: Training failed due to controller error:\n"
    "The worker group startup timed out after 120.0 seconds waiting for 1 workers.\n"
)
RAY_ERROR_LINE = (
    "ray.train.ControllerError: Training failed due to controller error: "
    "The worker group startup timed out after 120.0 seconds waiting for 1 workers."
)


def run(capsys, *args) -> tuple[int, str, str]:
    """The command in this process (imports paid once): (exit status, stdout, stderr)."""
    try:
        status = results.main([str(a) for a in args])
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys, *args) -> dict:
    status, out, err = run(capsys, *args, "--format", "json")
    assert status == 0, err
    return json.loads(out)


def copy_experiment(source: Path, parent: Path, name: str = "smoke") -> Path:
    return Path(shutil.copytree(source, parent / name))


def result_files(experiment: Path) -> list[Path]:
    return sorted(experiment.glob("collatz_trial_*/result.json"))


def last_reports(experiment: Path) -> list[dict]:
    """Each trial's last report straight from result.json, not through the reader."""
    out = []
    for path in result_files(experiment):
        lines = read_reports(path)
        out.append(
            {"trial_id": lines[-1]["trial_id"] if lines else None, "metrics": lines[-1] if lines else {}}
        )
    return out


def budget_epochs(experiment: Path) -> int:
    return json.loads((experiment / "collatz_search.json").read_text())["budget"]["epochs"]


# -- the formats --------------------------------------------------------------------------
def test_table_shows_the_best_trial_every_section_and_the_published_runs(smoke_experiment, capsys):
    status, out, _ = run(capsys, smoke_experiment)
    assert status == 0
    best = by_the_rule(last_reports(smoke_experiment), budget_epochs(smoke_experiment))[0]
    assert f"Best trial {best['trial_id']}" in out
    for heading in (
        "Overview",
        "Held-out trajectories at epoch",
        "Population metrics",
        "Learning curve of",
        "Trials, best first",
        "Compared with the published log",
    ):
        assert heading in out
    assert "   Epoch |      Loss |  Pass% |   Wtd% | Growth% | GrWtd% | Traj Viol" in out
    assert "lookahead 100" in out and "14/429" in out  # docs/method.md, run 7
    assert "500-row evaluation set" in out  # the smoke search's pass rates don't compare


def test_markdown_is_what_summary_md_holds(smoke_experiment, tmp_path, capsys):
    experiment = copy_experiment(smoke_experiment, tmp_path)
    (experiment / "summary.md").unlink(missing_ok=True)
    status, out, _ = run(capsys, experiment, "--format", "md")
    assert status == 0
    assert out.startswith("# Experiment smoke\n")
    assert "| seed | violations | steps |" in out
    assert (experiment / "summary.md").read_text() == out


def test_summary_md_is_written_whatever_the_format(smoke_experiment, tmp_path, capsys):
    experiment = copy_experiment(smoke_experiment, tmp_path)
    (experiment / "summary.md").unlink(missing_ok=True)
    run_json(capsys, experiment)
    assert (experiment / "summary.md").read_text().startswith("# Experiment smoke")


def test_json_best_has_its_full_config_and_the_spec6_metrics(smoke_experiment, capsys):
    data = run_json(capsys, smoke_experiment)
    assert set(data) >= {"best", "trials", "published", "experiments"}
    best = data["best"]
    config = TrainConfig.from_dict(best["config"])  # the trainer's full, valid config
    assert best["config_diff"] == config.diff()
    seeds = config.test_seeds
    per_seed = tuple(f"traj_{s}_{k}" for s in seeds for k in ("violations", "length", "worst"))
    for key in METRIC_KEYS + per_seed:
        assert key in best["metrics"], key
    assert best["status"] == "TERMINATED" and best["epoch"] == budget_epochs(smoke_experiment)
    assert [p["run"] for p in data["published"]] == [2, 3, 4, 5, 6, 7]
    assert data["experiments"][0]["best"]["trial_id"] == best["trial_id"]


def by_the_rule(trials: list[dict], max_epochs: int) -> list[dict]:
    """The documented ranking, written out here rather than taken from the code under
    test: trials that reached the full budget first, then those ASHA stopped, each group
    by last objective, lowest first."""
    full = [t for t in trials if t["metrics"].get("epoch") == max_epochs]
    stopped = [t for t in trials if t not in full]
    return sorted(full, key=lambda t: t["metrics"]["objective"]) + sorted(
        stopped, key=lambda t: t["metrics"]["objective"]
    )


def test_trials_are_ranked_by_collatz_ray_ranking(smoke_experiment, capsys):
    data = run_json(capsys, smoke_experiment)
    expected = by_the_rule(last_reports(smoke_experiment), budget_epochs(smoke_experiment))
    stopped = [t for t in expected if t["metrics"]["epoch"] < budget_epochs(smoke_experiment)]
    assert stopped and len(stopped) < len(expected), "the smoke search should have both kinds of trial"
    assert [t["trial_id"] for t in data["trials"]] == [t["trial_id"] for t in expected]
    assert data["best"]["trial_id"] == expected[0]["trial_id"]


def test_csv_has_one_row_per_trial_with_parameters_and_metrics(smoke_experiment, capsys, tmp_path):
    status, out, _ = run(capsys, smoke_experiment, "--format", "csv")
    assert status == 0
    path = tmp_path / "trials.csv"
    path.write_text(out)
    table = pd.read_csv(path)
    assert len(table) == len(result_files(smoke_experiment))
    assert {
        "trial_id",
        "ending",
        "epoch",
        "lookahead",
        "lr",
        "traj_total_violations",
        "pass_rate",
        "objective",
    } <= set(table.columns)
    assert table["rank"].tolist() == list(range(1, len(table) + 1))


def test_the_smoke_search_s_importances_are_marked_uncertain(smoke_experiment, capsys):
    """Its 4 trials are too few to trust; ASHA stopped some at its one rung, so all are
    compared there, not at the full budget only the others reached."""
    imp = run_json(capsys, smoke_experiment)["importance"]
    settings = json.loads((smoke_experiment / "collatz_search.json").read_text())
    trials = len(result_files(smoke_experiment))
    assert imp["status"] == "uncertain" and imp["label"] == f"uncertain ({trials} trials)"
    assert imp["epoch"] == settings["budget"]["grace_epochs"] and not imp["full_budget"]
    assert set(imp["importances"]) == {"lookahead", "lr"}
    assert sum(imp["importances"].values()) == pytest.approx(1.0)
    assert imp["distributions"] == f"the space {smoke_experiment / 'space.yaml'}"


# -- export (--plot: test_plots.py) ---------------------------------------------------
def test_export_best_is_a_run_directory_train_and_evaluate_accept(
    smoke_experiment, tmp_path, eval_csv, capsys
):
    out = tmp_path / "best"
    best = run_json(capsys, smoke_experiment, "--export-best", out)["best"]
    checkpoint = out / "checkpoints" / f"epoch_{best['epoch']:08d}"
    config = TrainConfig.from_yaml(out / "config.yaml")
    # The trial's config, except that the device is left to wherever the export is used.
    assert best["config"]["device"] == "cpu" and config.device == "auto"
    assert config.to_dict() == {**best["config"], "device": "auto"}

    # Re-run it from the YAML.
    rerun = tmp_path / "rerun"
    cli(
        "train",
        "--config",
        out / "config.yaml",
        "--epochs",
        2,
        "--eval-interval",
        1,
        "--eval-csv",
        eval_csv,
        "--out",
        rerun,
        "--quiet",
    )
    assert len((rerun / "metrics.jsonl").read_text().splitlines()) == 2

    # Evaluate the export itself (no shape flags: its newest checkpoint with its config),
    # the checkpoint and the seed-format weights: the trial's own numbers.
    shape = ["--lookahead", config.lookahead, "--layers", ",".join(map(str, config.layers))]
    for target in ([out], [checkpoint], [out / "model.pth", *shape]):
        metrics = json.loads(cli("evaluate", "--checkpoint", *target, "--eval-csv", eval_csv, "--json"))
        assert metrics["traj_total_violations"] == best["metrics"]["traj_total_violations"]
        assert metrics["pass_rate"] == pytest.approx(best["metrics"]["pass_rate"], abs=0.21)
        assert metrics["checkpoint_epoch"] == (None if target[0].name == "model.pth" else best["epoch"])
    first_line = cli("evaluate", "--checkpoint", out, "--eval-csv", eval_csv).splitlines()[0]
    assert first_line.startswith(f"checkpoint {checkpoint}: epoch {best['epoch']}, the newest of run {out}")

    # Continued, it takes the device config.yaml names (auto), not the trial's (cpu).
    from collatz_ray import train as train_command
    from collatz_ray.trainer.checkpoints import load_checkpoint

    state = load_checkpoint(checkpoint)
    assert state["config"]["device"] == "cpu"
    args = train_command.parser().parse_args(["--resume", str(out)])
    assert train_command.resumed_config(args, state, out, checkpoint).device == "auto"

    # Continue it: the exported evaluations are kept and one more is appended.
    exported = (out / "metrics.jsonl").read_text().splitlines()
    cli("train", "--resume", out, "--epochs", best["epoch"] + config.eval_interval, "--quiet")
    resumed = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(resumed) == len(exported) + 1
    assert resumed[-1]["epoch"] == best["epoch"] + config.eval_interval


def cli(tool: str, *args) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", f"collatz_ray.{tool}", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


# -- experiments caught mid-write, errored, or gone ----------------------------------------
def test_a_half_written_result_line_is_skipped_and_the_trial_read_as_running(
    smoke_experiment, tmp_path, capsys
):
    experiment = copy_experiment(smoke_experiment, tmp_path)
    # As if the driver was killed mid-report: no state saved, last line cut in half.
    for state in experiment.glob("experiment_state-*.json"):
        state.unlink()
    best_id = run_json(capsys, experiment)["best"]["trial_id"]
    path = next(p for p in result_files(experiment) if best_id in p.parent.name)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])

    status, out, err = run(capsys, experiment, "--format", "json")
    assert status == 0
    assert f"{path}: skipped half-written line {len(lines)}" in err
    trial = next(t for t in json.loads(out)["trials"] if t["trial_id"] == best_id)
    assert trial["epoch"] == json.loads(lines[-2])["epoch"]
    assert trial["status"] == "RUNNING" and trial["ending"].startswith("running")


def test_an_errored_trial_is_listed_with_its_error(smoke_experiment, tmp_path, capsys):
    experiment = copy_experiment(smoke_experiment, tmp_path)
    victim = result_files(experiment)[0].parent
    trial_id = json.loads(victim.joinpath("result.json").read_text().splitlines()[0])["trial_id"]
    victim.joinpath("result.json").write_text("")  # failed before its first report
    victim.joinpath("error.txt").write_text(RAY_ERROR)
    mark_errored(experiment, trial_id)

    status, out, _ = run(capsys, experiment)
    assert status == 0
    errors = out[out.index("Trials with errors") :]
    assert trial_id in errors and RAY_ERROR_LINE in unwrapped(errors)  # wrapped in its column
    trial = next(t for t in run_json(capsys, experiment)["trials"] if t["trial_id"] == trial_id)
    assert trial["status"] == "ERROR" and trial["error"] == RAY_ERROR_LINE
    assert trial["ending"] == f"errored before its first report: {RAY_ERROR_LINE}"


def mark_errored(experiment: Path, trial_id: str) -> None:
    """Set the trial's status to ERROR in Tune's experiment state, as Tune would."""
    state_file = next(experiment.glob("experiment_state-*.json"))
    state = json.loads(state_file.read_text())
    for entry in state["trial_data"]:
        trial = json.loads(entry[0])
        if trial["trial_id"] == trial_id:
            trial["status"] = "ERROR"
            entry[0] = json.dumps(trial)
    state_file.write_text(json.dumps(state))


def test_error_line_takes_the_last_failure_s_exception():
    second = RAY_ERROR.replace("# 1", "# 2").replace("120.0", "60.0")
    assert error_line(RAY_ERROR + second) == RAY_ERROR_LINE.replace("120.0", "60.0")
    assert error_line("Failure # 1 (occurred at x)\nsomething odd\n") == "something odd"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: tmp / "nowhere", "no such directory"),
        (lambda tmp: tmp, "not a Ray Tune experiment"),
        (lambda tmp: "--format=xml", "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_status_2(tmp_path, make, message):
    proc = subprocess.run(
        [*RESULTS, str(make(tmp_path))], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
    assert proc.stderr.startswith("collatz_ray.results: error: ")


def test_without_arguments_the_newest_experiment_under_results_is_read(
    smoke_experiment, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert run(capsys)[0] == 2  # no ./results yet
    newer = copy_experiment(smoke_experiment, tmp_path / "results", "newer")
    older = copy_experiment(smoke_experiment, tmp_path / "results", "older")  # copied last
    # A later search: Tune names its state file after its driver session's start.
    for state in newer.glob("experiment_state-*.json"):
        state.rename(state.with_name("experiment_state-2099-01-01_00-00-00.json"))
    status, out, _ = run(capsys)
    assert status == 0 and out.startswith("Experiment newer\n")
    # Summarising the older one writes its summary.md; the newest search stays the newest.
    assert run(capsys, older)[0] == 0 and (older / "summary.md").exists()
    status, out, _ = run(capsys)
    assert status == 0 and out.startswith("Experiment newer\n")


# -- several experiments ----------------------------------------------------------------------
def test_two_experiments_are_compared_side_by_side(smoke_experiment, tmp_path, capsys):
    first = copy_experiment(smoke_experiment, tmp_path, "first")
    second = copy_experiment(smoke_experiment, tmp_path, "second")
    data = run_json(capsys, first, second)
    assert [e["name"] for e in data["experiments"]] == ["first", "second"]
    assert data["experiments"][0]["best"] == data["experiments"][1]["best"]  # same search
    for experiment, other in ((first, "second"), (second, "first")):
        summary = (experiment / "summary.md").read_text()
        comparison = summary[summary.index("## Compared with the published log") :]
        assert f"| {experiment.name} (this) |" in comparison and f"| {other} |" in comparison


def test_reading_needs_no_ray():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, collatz_ray.results, "
            "collatz_ray.results.plots, collatz_ray.results.export; "
            "print('ray' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.strip() == "False", proc.stderr
