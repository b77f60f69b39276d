"""Sizing a search from a space, a preset, budget flags and a resumed experiment's saved
budget; ASHA's rungs and expected stops; the time estimate; the costliest config that
calibration times. No Ray, no training."""

from __future__ import annotations

import dataclasses

import pytest

from collatz_ray.errors import UsageError
from collatz_ray.search import plan
from collatz_ray.search.calibrate import costliest_config
from collatz_ray.search.resources import trial_resources
from collatz_ray.search.spaces import Budget, load_space
from collatz_ray.search.storage import check_storage
from collatz_ray.trainer.config import LOG_LAYERS

NO_FLAGS = dict.fromkeys(plan.BUDGET_FLAGS)


def size(space="lookahead", *, preset=None, saved=None, **flags):
    return plan.size_search(
        load_space(space), preset=preset, flags=NO_FLAGS | flags, saved_budget=saved, experiment="exp-1"
    )


def refused(*args, **kwargs) -> str:
    with pytest.raises(UsageError) as err:
        size(*args, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


# -- the budget ----------------------------------------------------------------------


def test_epochs_scale_evaluations_and_grace_unless_given():
    # The command: refused before, because the file's eval_interval stayed 5000.
    sizing = size(epochs=3000, num_samples=4, grace_epochs=1000)
    assert sizing.budget == Budget(
        epochs=3000, eval_interval=150, grace_epochs=1000, reduction_factor=3, num_samples=4
    )
    assert sizing.notes == ("eval_interval 5000->150 scaled with --epochs 3000",)
    both = size(epochs=3000)
    assert (both.budget.eval_interval, both.budget.grace_epochs) == (150, 600)
    assert both.notes == ("eval_interval 5000->150 and grace_epochs 20000->600 scaled with --epochs 3000",)
    given = size(epochs=3000, eval_interval=300, reduction_factor=2)
    assert (given.budget.eval_interval, given.budget.grace_epochs, given.budget.reduction_factor) == (
        300,
        600,
        2,
    )
    assert size(eval_interval=1000).budget.grace_epochs == 20000  # nothing scales without --epochs
    assert size(epochs=100000).notes == ()


def test_budget_errors_name_the_flag_or_the_file():
    assert (
        refused(epochs=3000, eval_interval=5000) == "--eval-interval 5000: expected at most --epochs (3000)"
    )
    assert refused(epochs=3000, grace_epochs=5000) == "--grace-epochs 5000: expected at most --epochs (3000)"
    path = load_space("lookahead").path
    assert refused(grace_epochs=200000) == (
        f"--grace-epochs 200000: expected at most budget.epochs of {path} (100000)"
    )
    assert (
        refused(preset="smoke", grace_epochs=500)
        == "--grace-epochs 500: expected at most the epochs of --smoke (80)"
    )


def test_presets_then_flags():
    laptop = size(preset="laptop")
    assert laptop.space.name == "lookahead-laptop"
    assert laptop.budget == Budget(
        epochs=50000, eval_interval=2500, grace_epochs=10000, reduction_factor=3, num_samples=24
    )
    assert laptop.notes == (
        "epochs 100000->50000, eval_interval 5000->2500 and grace_epochs 20000->10000 set by --scale laptop",
    )
    shorter = size(preset="laptop", epochs=10000)
    assert (shorter.budget.eval_interval, shorter.budget.grace_epochs) == (500, 2000)
    assert shorter.space.fixed["layers"] == (256, 128, 128, 64, 64, 64, 32, 16, 16)
    changes = plan.preset_changes(laptop)
    assert "batch_size: 1024 -> 256" in changes and "ramp_len: 50000 -> 25000" in changes
    assert plan.preset_changes(size()) == []


def test_a_resumed_search_keeps_its_saved_budget():
    saved = {
        "epochs": 30000,
        "eval_interval": 1000,
        "grace_epochs": 6000,
        "reduction_factor": 2,
        "num_samples": 5,
    }
    resumed = size(saved=saved)
    assert resumed.budget == Budget(**saved)
    # Flags replace epochs, grace and trials as they always did, and nothing is scaled.
    longer = size(saved=saved, epochs=60000, num_samples=8)
    assert longer.budget == Budget(**saved | {"epochs": 60000, "num_samples": 8})
    assert size(saved=saved, eval_interval=1000).budget == Budget(**saved)  # the same value is fine
    message = refused(saved=saved, eval_interval=500)
    assert message.startswith("--eval-interval 500: experiment exp-1 runs with eval_interval 1000")
    assert refused(saved=saved, reduction_factor=3).startswith("--reduction-factor 3: experiment exp-1")
    assert (
        refused(saved=saved, grace_epochs=40000)
        == "--grace-epochs 40000: expected at most the epochs of experiment exp-1 (30000)"
    )


# -- ASHA and the estimate -----------------------------------------------------------


def test_rungs_and_where_they_are_judged():
    budget = load_space("lookahead").budget
    assert budget.rungs() == [20000, 60000] and plan.judged_at(budget) == [20000, 60000]
    off_grid = Budget(epochs=3000, eval_interval=150, grace_epochs=1000, reduction_factor=3, num_samples=4)
    assert off_grid.rungs() == [1000] and plan.judged_at(off_grid) == [1050]
    assert Budget(
        epochs=900, eval_interval=100, grace_epochs=100, reduction_factor=3, num_samples=4
    ).rungs() == [100, 300]  # 900 itself is the end, where no trial is stopped
    assert (
        Budget(epochs=100, eval_interval=10, grace_epochs=100, reduction_factor=3, num_samples=4).rungs()
        == []
    )


def test_expected_promotions_follow_rays_asha():
    assert plan.promoted(1, 3) == 1.0
    assert plan.promoted(2, 3) == pytest.approx(1.5)
    assert plan.promoted(3000, 3) / 3000 == pytest.approx(1 / 3, rel=0.01)
    assert plan.promoted(24, 3) / 24 > 1 / 3  # few trials pass more often
    stages = plan.stages(load_space("lookahead").budget)
    assert [end for end, _ in stages] == [20000, 60000, 100000]
    assert stages[0][1] == 24 and stages[1][1] == pytest.approx(plan.promoted(24, 3))


def test_the_estimate_adds_up():
    budget = Budget(epochs=1000, eval_interval=100, grace_epochs=1000, reduction_factor=3, num_samples=4)
    est = plan.estimate(budget, epoch_s=0.01, eval_s=0.5, concurrency=2)
    assert (est.epochs_per_trial, est.reports_per_trial) == (1000, 10)
    per_trial = plan.TRIAL_START_S + 1000 * 0.01 + 10 * (plan.REPORT_S + 0.5)
    assert est.seconds == pytest.approx(plan.RAY_START_S + 4 * per_trial / 2)
    assert plan.estimate(budget, epoch_s=0.01, eval_s=0.5, concurrency=16).concurrency == 4
    staged = plan.estimate(load_space("lookahead").budget, epoch_s=0.01, eval_s=0, concurrency=1)
    assert 0.38 * 100000 < staged.epochs_per_trial < 0.5 * 100000


def test_plan_line_says_what_was_scaled():
    line = plan.plan_line(size(epochs=3000), concurrency=2, cpus=1, gpus=0, path="/r/x")
    assert line == (
        "Search 'lookahead': 24 trials x 3000 epochs, 2 at once, 1 CPU + 0 GPU each\n"
        "  eval every 150, ASHA grace 600, factor 3; "
        "eval_interval 5000->150 and grace_epochs 20000->600 scaled with --epochs\n"
        "    3000\nExperiment: /r/x"
    )
    assert all(len(part) <= 120 for part in line.splitlines())


# -- what calibration times, and resources -------------------------------------------


def test_the_costliest_config_is_the_widest_longest_heaviest():
    full = costliest_config(load_space("full"))
    assert (full.lookahead, full.layers, full.linear, full.use_t4, full.use_t8) == (
        300,
        LOG_LAYERS,
        False,
        True,
        True,
    )
    assert full.mine_negatives and full.mine_pool == 2500 and full.mine_count == 25
    laptop = costliest_config(load_space("model_size").laptop())
    assert not laptop.linear and laptop.layers == (256, 128, 128, 64, 64, 64, 32, 16, 16)
    assert costliest_config(load_space("smoke")).lookahead == 20


def test_trial_resources_refuse_what_does_not_fit():
    assert trial_resources({"CPU": 4}, cpus_per_trial=1, gpus_per_trial=None) == dataclasses.replace(
        trial_resources({"CPU": 4}, cpus_per_trial=1, gpus_per_trial=0), fits=4
    )
    assert trial_resources({"CPU": 8, "GPU": 2}, cpus_per_trial=1, gpus_per_trial=None).gpus == 1.0
    assert trial_resources({"CPU": 8, "GPU": 2}, cpus_per_trial=2.4, gpus_per_trial=None).threads == 2
    with pytest.raises(UsageError, match="--gpus-per-trial 1: the cluster has no GPUs"):
        trial_resources({"CPU": 4}, cpus_per_trial=1, gpus_per_trial=1)
    with pytest.raises(UsageError, match="--cpus-per-trial 8: the cluster has only 4 CPUs"):
        trial_resources({"CPU": 4}, cpus_per_trial=8, gpus_per_trial=None)


def test_a_dry_run_storage_check_creates_nothing(tmp_path):
    target = tmp_path / "not" / "yet"
    check_storage(str(target), creating=True, dry_run=True)
    assert not (tmp_path / "not").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="not writable"):
        check_storage(str(blocker / "x"), creating=True, dry_run=True)


def test_a_long_plan_line_continues_under_its_text_and_keeps_paths_whole():
    from collatz_ray.trainer.text import TEXT_WIDTH, fitted

    line = "  time:       about 45.3 h; " + "an estimate of many words " * 8
    parts = fitted(line)
    assert len(parts) > 1 and all(len(part) <= TEXT_WIDTH for part in parts)
    assert all(part.startswith(" " * 14) and not part[14].isspace() for part in parts[1:])
    assert " ".join(part.strip() for part in parts) == line.strip()
    path = "  results:    /" + "x" * 150
    assert fitted(path) == [path]


def test_a_condition_reads_as_words_not_a_python_repr():
    from collatz_ray.search.plan import _condition

    assert _condition((("linear", (False,)),)) == "linear is false"
    assert _condition({"mine_negatives": (True,), "lookahead": (10, 20)}) == (
        "mine_negatives is true and lookahead is 10 or 20"
    )
