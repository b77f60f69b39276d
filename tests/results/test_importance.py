"""Which settings matter: parameter importances in the summaries (text, summary.md, JSON)
and the --plot chart. Experiments are written by hand in Ray's layout, with a copy of
their space as a search leaves it, and scored so that the answer is known: one
parameter decides the objective, the others are noise. No search is run here (the
smoke search's own importances are checked in test_results.py)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.clitools import run_command
from support.width import unwrapped

from collatz_ray.results.importance import ENOUGH_TRIALS, parameter_importances
from collatz_ray.results.read import load_experiment

REPO = Path(__file__).resolve().parents[2]
BUDGET = {"epochs": 40, "eval_interval": 20, "grace_epochs": 20, "reduction_factor": 2, "num_samples": 12}
SPACE = """\
budget: {epochs: 40, eval_interval: 20, grace_epochs: 20, reduction_factor: 2, num_samples: 12}
fixed: {layers: [16, 16], mine_pool: 256}
parameters:
  lookahead: {values: [5, 10, 20]}
  lr: {distribution: log_uniform, min: 1.0e-4, max: 1.0e-2}
  mine_negatives: {values: [false, true]}
  mine_count: {values: [8, 16, 32], when: {mine_negatives: true}}
"""
LOOKAHEADS = (5, 10, 20)
MINE_COUNTS = (8, 16, 32)


def trial_params(i: int) -> dict:
    """The i-th trial's sampled values: every combination turns up, none in step with
    another (lr rises with i; lookahead, mining and mine_count cycle at other periods)."""
    params = {
        "lookahead": LOOKAHEADS[i % 3],
        "lr": 10 ** (-4 + 2 * ((7 * i) % 12) / 11),
        "mine_negatives": i % 2 == 1,
    }
    if params["mine_negatives"]:
        params["mine_count"] = MINE_COUNTS[(i // 4) % 3]
    return params


def score(params: dict, decider: str) -> float:
    """An objective that only `decider` moves (lowest is best), plus a tie-break."""
    if decider == "lr":
        return 10 + 40 * (math.log10(params["lr"]) + 4)
    if decider == "lookahead":
        return 10 + 10 * LOOKAHEADS.index(params["lookahead"])
    return 10 + (20 * MINE_COUNTS.index(params["mine_count"]) if "mine_count" in params else 50)


def report(epoch: int, objective: float, trial_id: str) -> dict:
    violations = int(objective)
    return {
        "epoch": epoch,
        "trial_id": trial_id,
        "objective": objective,
        "done": epoch == 40,
        "traj_total_violations": violations,
        "traj_total_steps": 429,
        "loss": 1.0,
        "pass_rate": 90.0,
        "weighted_pass_rate": 88.0,
        "growth_pass_rate": 85.0,
        "growth_weighted_pass_rate": 80.0,
        "margin_5pct": -0.01,
    }


def experiment(
    root: Path,
    *,
    trials: int = 12,
    decider: str = "lr",
    full: int | None = None,
    space: str = SPACE,
    params=trial_params,
    name: str = "handmade",
    late=lambda value: value - 1,
) -> Path:
    """An experiment of `trials` trials scored by `decider` at epoch 20 and by
    late(that score) at 40; the first `full` of them (default all) reach the full 40
    epochs, the others ASHA stopped at 20."""
    path = root / name
    path.mkdir()
    (path / "space.yaml").write_text(space)
    settings = {
        "space_name": name,
        "space_path": str(root / "gone.yaml"),
        "budget": BUDGET,
        "objective": "log",
    }
    (path / "collatz_search.json").write_text(json.dumps(settings))
    for i in range(trials):
        trial_id = f"t{i:02d}"
        folder = path / f"collatz_trial_{trial_id}"
        folder.mkdir()
        sampled = params(i)
        (folder / "params.json").write_text(json.dumps(sampled))
        value = score(sampled, decider)
        reached = (20, 40) if full is None or i < full else (20,)
        lines = [report(e, value if e == 20 else late(value), trial_id) for e in reached]
        (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def ranking(path: Path) -> list[str]:
    return list(parameter_importances(load_experiment(path)).importances)


def importance_blocks(text: str) -> list[str]:
    """The blocks (paragraphs, tables) of the importance section of a text summary."""
    title = "Which settings matter (parameter importance)"
    section = text.split(f"{title}\n{'-' * len(title)}\n")[1].split("\n\nCompared with")[0]
    return section.split("\n\n")


def png_title(path: Path) -> str:
    """The Title text chunk of a PNG (Pillow comes with matplotlib)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.text["Title"]


# -- the answer ---------------------------------------------------------------------------------
@pytest.mark.parametrize("decider", ["lr", "lookahead", "mine_count"])
def test_the_parameter_that_decides_the_score_matters_most(tmp_path, decider):
    imp = parameter_importances(load_experiment(experiment(tmp_path, decider=decider)))
    assert imp.status == "ok" and imp.label == "12 trials" and imp.reason == ""
    assert imp.epoch == 40 and imp.full_budget and imp.trials == 12
    assert imp.best_trials >= 3  # 10% of 12 would be one trial: no distribution
    assert sum(imp.importances.values()) == pytest.approx(1.0)
    first, share = next(iter(imp.importances.items()))
    # mine_count decides through mining too: the best trials all mined.
    assert first == decider or (decider == "mine_count" and first == "mine_negatives"), imp.importances
    assert imp.importances[decider] > 0.3 and share > 0.3, imp.importances
    noise = [n for n in ("lookahead", "lr") if n != decider]
    assert all(imp.importances[n] < imp.importances[decider] / 3 for n in noise), imp.importances


def test_a_conditional_parameter_counts_within_the_trials_that_sampled_it(tmp_path):
    imp = parameter_importances(load_experiment(experiment(tmp_path, decider="mine_count")))
    assert imp.trials == 12  # the trials that did not mine still count
    assert imp.sampled_in == {**imp.sampled_in, "mine_count": 6, "lookahead": 12, "lr": 12}
    assert "mine_count" in imp.importances and imp.not_assessed == {}


def test_every_summary_shows_them(tmp_path):
    path = experiment(tmp_path)
    outcome = run_command("results", path)
    assert outcome.status == 0, outcome.stderr
    table, method = importance_blocks(outcome.stdout)
    rows = [line.split() for line in table.splitlines()[2:]]
    assert [row[0] for row in rows] == ranking(path) and rows[0][0] == "lr", table
    assert {row[0]: row[2] for row in rows} == {
        "lr": "12/12",
        "lookahead": "12/12",
        "mine_negatives": "12/12",
        "mine_count": "6/12",
    }
    assert "at the full budget (epoch 40), which 12 trials reached" in unwrapped(method)
    assert "## Which settings matter (parameter importance)" in (path / "summary.md").read_text()
    data = json.loads(run_command("results", path, "--format", "json").stdout)
    assert data["importance"] == data["experiments"][0]["importance"]
    assert list(data["importance"]["importances"]) == ranking(path)
    assert data["importance"]["status"] == "ok"


def test_the_chart_is_drawn_with_how_sure_it_is_in_its_title(tmp_path):
    for trials in (12, 5):
        path = experiment(tmp_path, trials=trials, name=f"n{trials}")
        outcome = run_command("results", path, "--plot")
        assert outcome.status == 0, outcome.stderr
        chart = path / "parameter_importance.png"
        assert f"wrote {chart}" in outcome.stderr
        assert len(chart.read_bytes()) > 10_000
        expected = "12 trials" if trials == 12 else "uncertain (5 trials)"
        assert png_title(chart) == f"n{trials}: which settings matter, {expected}"


def test_the_same_trials_give_the_same_numbers_whatever_the_hash_seed(tmp_path):
    # Two parameters that are copies of each other tie: their order must come from the
    # space file, not from a set's order, which the hash seed changes.
    space = SPACE + "  target_type: {values: [fixed, split]}\n  curriculum: {values: [false, true]}\n"

    def params(i: int) -> dict:
        return {**trial_params(i), "target_type": ("fixed", "split")[i % 2], "curriculum": i % 2 == 1}

    path = experiment(tmp_path, space=space, params=params)
    outputs = []
    for seed in ("1", "2"):
        proc = subprocess.run(
            [sys.executable, "-m", "collatz_ray.results", str(path), "--format", "json"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)},
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(json.loads(proc.stdout)["importance"])
    assert outputs[0] == outputs[1]
    names = list(outputs[0]["importances"])
    assert names.index("target_type") < names.index("curriculum")


# -- which epoch ---------------------------------------------------------------------------------
def test_trials_asha_stopped_are_compared_at_an_epoch_all_of_them_reached(tmp_path):
    # At epoch 40 the order is reversed: mixing the four's late scores in would show.
    path = experiment(tmp_path, full=4, late=lambda value: 200 - value)
    imp = parameter_importances(load_experiment(path))
    assert imp.epoch == 20 and not imp.full_budget and imp.trials == 12 and imp.status == "ok"
    assert imp.scored_at == (
        "at epoch 20, the largest that at least 10 trials reached "
        "(only 4 reached the full budget of 40 epochs)"
    )
    # The scores at epoch 20 decide, not the (reversed) ones of the four that went on.
    for result in path.glob("collatz_trial_*/result.json"):
        result.write_text(result.read_text().splitlines()[0] + "\n")
    assert parameter_importances(load_experiment(path)).importances == imp.importances


def test_enough_trials_at_the_full_budget_are_compared_there(tmp_path):
    imp = parameter_importances(load_experiment(experiment(tmp_path, trials=14, full=ENOUGH_TRIALS)))
    assert imp.epoch == 40 and imp.full_budget and imp.trials == ENOUGH_TRIALS


# -- how sure ------------------------------------------------------------------------------------
def test_few_trials_are_marked_uncertain_everywhere(tmp_path):
    path = experiment(tmp_path, trials=5)
    outcome = run_command("results", path)
    assert outcome.status == 0, outcome.stderr
    blocks = importance_blocks(outcome.stdout)
    assert blocks[0].startswith("Uncertain (5 trials): fewer than 10 trials have a score at one epoch")
    assert blocks[1].startswith("parameter") and "lr" in blocks[1]  # the numbers, marked
    data = json.loads(run_command("results", path, "--format", "json").stdout)["importance"]
    assert data["status"] == "uncertain" and data["label"] == "uncertain (5 trials)"
    assert data["importances"] and data["best_trials"] == 2


@pytest.mark.parametrize(
    "trials, space, label",
    [
        (1, SPACE, "not enough trials (1 trial)"),
        (
            6,
            "parameters:\n  lr: {distribution: log_uniform, min: 1.0e-4, max: 1.0e-2}\n",
            "not enough parameters (only lr varies)",
        ),
    ],
)
def test_too_little_to_compare_gives_no_numbers(tmp_path, trials, space, label):
    path = experiment(
        tmp_path,
        trials=trials,
        space=space,
        params=lambda i: {k: v for k, v in trial_params(i).items() if f"  {k}:" in space},
    )
    outcome = run_command("results", path, "--plot")
    assert outcome.status == 0, outcome.stderr
    blocks = importance_blocks(outcome.stdout)
    assert blocks[0].startswith(label[0].upper() + label[1:] + ":")
    assert not any(block.startswith("parameter") for block in blocks)
    data = json.loads(run_command("results", path, "--format", "json").stdout)["importance"]
    assert data["status"] == "not_enough" and data["label"] == label and data["importances"] == {}
    assert not (path / "parameter_importance.png").exists()
    assert (path / "violations_by_epoch.png").exists()  # the other charts are drawn as before


def test_a_parameter_with_one_value_is_not_assessed(tmp_path):
    path = experiment(tmp_path, params=lambda i: {**trial_params(i), "lookahead": 10})
    imp = parameter_importances(load_experiment(path))
    assert imp.not_assessed == {"lookahead": "one value (10) in the 12 trials that sampled it"}
    assert "lookahead" not in imp.importances and imp.status == "ok"


# -- damaged trials ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content, problem",
    [
        ('{"lookahead": 5, "lr": 0.00', "no lookahead, which the space samples for this trial"),
        ('{"lookahead": 5, "lr": "fast", "mine_negatives": false}', "key 'lr' expected a number"),
        (
            '{"lookahead": 7, "lr": 0.001, "mine_negatives": false}',
            "lookahead 7 is not a value space.yaml samples",
        ),
        ('{"lookahead": 5, "lr": 0.001, "mine_negatives": true}', "no mine_count, which the space samples"),
    ],
    ids=["truncated", "wrong-type", "outside-the-space", "missing-conditional"],
)
def test_a_trial_with_damaged_params_is_left_out_by_name_and_nothing_else_is_lost(tmp_path, content, problem):
    path = experiment(tmp_path)
    damaged = path / "collatz_trial_t03" / "params.json"
    damaged.write_text(content)
    outcome = run_command("results", path, "--format", "json")
    assert outcome.status == 0 and "Traceback" not in outcome.stderr, outcome.stderr
    data = json.loads(outcome.stdout)
    imp = data["importance"]
    assert imp["trials"] == 11 and imp["status"] == "ok"
    assert len(imp["skipped"]) == 1, imp["skipped"]
    assert imp["skipped"][0].startswith(f"{damaged}: {problem}")
    assert imp["skipped"][0].endswith("; trial left out")
    assert len(data["trials"]) == 12  # the rest of the summary still has every trial
    text = run_command("results", path).stdout
    assert f"Left out: {damaged}: {problem}" in unwrapped(text)


def test_without_its_space_file_the_sampled_values_give_the_ranges(tmp_path):
    path = experiment(tmp_path)
    (path / "space.yaml").unlink()
    imp = parameter_importances(load_experiment(path))
    assert imp.distributions == "the sampled values (the experiment's space file is gone)"
    assert next(iter(imp.importances)) == "lr" and imp.trials == 12


def test_a_damaged_space_copy_falls_back_to_the_sampled_values(tmp_path):
    path = experiment(tmp_path)
    (path / "space.yaml").write_text("parameters: {lookahead: {values: [5\n")
    imp = parameter_importances(load_experiment(path))
    assert imp.distributions.startswith("the sampled values (the space file could not be used: ")
    assert str(path / "space.yaml") in imp.distributions
    assert next(iter(imp.importances)) == "lr"


def test_the_old_layout_without_a_space_reads(tmp_path):
    old = Path(shutil.copytree(REPO / "tests" / "data" / "old_layout" / "old-layout", tmp_path / "old"))
    imp = parameter_importances(load_experiment(old))
    assert imp.status == "not_enough" and imp.label == "not enough trials (1 trial)"


def test_summaries_load_optuna_only_to_compute_importances(tmp_path):
    code = (
        "import sys\nfrom collatz_ray.results.__main__ import main\n"
        "main([sys.argv[1], '--format', 'json'])\nprint('optuna' in sys.modules, file=sys.stderr)"
    )
    loaded = {}
    for trials in (1, 12):
        path = experiment(tmp_path, trials=trials, name=f"n{trials}")
        proc = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert proc.returncode == 0, proc.stderr
        loaded[trials] = proc.stderr.split()[-1]
    assert loaded == {1: "False", 12: "True"}
