"""Search spaces: every shipped file samples valid trainer configs (at full and smoke
scale), sampling is deterministic, and every kind of bad file is refused in one line
that names the file and the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import optuna
import pytest

from collatz_ray.errors import UsageError
from collatz_ray.search.spaces import (
    BUDGET_KEYS,
    DEFAULT_BUDGET,
    SPACES_DIR,
    Budget,
    Origin,
    SearchSpace,
    available_spaces,
    build_budget,
    load_space,
    scaled_budget,
)
from collatz_ray.trainer.config import LOG_LAYERS, TrainConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)

SHIPPED = sorted(SPACES_DIR.glob("*.yaml"))
N_TRIALS = 20


def sample(space: SearchSpace, sampler: optuna.samplers.BaseSampler, n: int = N_TRIALS) -> list[dict]:
    """Ask `n` trials, telling each a deterministic value so that TPE has history."""
    study = optuna.create_study(sampler=sampler)
    out = []
    for _ in range(n):
        trial = study.ask()
        params = space.suggest(trial)
        study.tell(trial, float(len(repr(sorted(params.items()))) % 7))
        out.append(params)
    return out


def check_conditions(space: SearchSpace, params: dict) -> None:
    """A parameter is sampled exactly when its `when` holds."""
    context = {**space.fixed, **{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}}
    for p in space.parameters:
        holds = all(key in context and context[key] in accepted for key, accepted in p.when)
        assert (p.name in params) == holds, (p.name, params)


# -- the shipped spaces --------------------------------------------------------------


def test_all_spaces_ship():
    assert available_spaces() == sorted(
        ["beta", "constraints", "full", "lookahead", "mining", "model_size", "smoke"]
    )


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_space_samples_valid_configs(path: Path):
    space = load_space(path)
    assert space == load_space(path.stem)
    assert space.description
    for params in sample(space, optuna.samplers.RandomSampler(seed=1)):
        check_conditions(space, params)
        config = space.trial_config(params)
        assert isinstance(config, TrainConfig)
        assert config.epochs == space.budget.epochs
        assert config.eval_interval == space.budget.eval_interval
        for name, value in params.items():
            assert config.to_dict()[name] == value


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_space_smoke_is_tiny(path: Path):
    space = load_space(path).smoke()
    assert space.budget.epochs <= 200 and space.budget.num_samples <= 4
    assert space.budget.reduction_factor == 2
    assert space.budget.grace_epochs <= 2 * space.budget.eval_interval
    for params in sample(space, optuna.samplers.RandomSampler(seed=2)):
        check_conditions(space, params)
        config = space.trial_config(params)
        assert config.epochs <= 200
        assert all(width <= 32 for width in config.hidden_layers)
        assert config.batch_size <= 128
        if config.mine_negatives:
            assert config.mine_pool <= 256
            assert config.first_mining_epoch <= config.epochs, "mining must happen in the smoke run"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_real_spaces_give_the_late_bloomer_time(path: Path):
    budget = load_space(path).budget
    if path.stem != "smoke":
        # Lookahead 100 was worst at 5000 epochs and best from 10000 on.
        assert budget.grace_epochs >= 10_000


@pytest.mark.parametrize("name", ["full", "lookahead", "mining"])
def test_tpe_with_one_seed_is_deterministic(name: str):
    space = load_space(name)
    first = sample(space, optuna.samplers.TPESampler(seed=7, n_startup_trials=5), n=15)
    again = sample(space, optuna.samplers.TPESampler(seed=7, n_startup_trials=5), n=15)
    assert first == again


def test_layers_travel_through_optuna_as_strings_and_come_back_as_lists():
    space = load_space("model_size")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        params = space.suggest(trial)
        study.tell(trial, 0.0)
        if "layers" in params:
            assert isinstance(params["layers"], list)
            assert trial.params["layers"] == ",".join(map(str, params["layers"]))
            seen.add(tuple(params["layers"]))
    assert LOG_LAYERS in seen and len(seen) >= 4


def test_constant_parameter_is_returned_but_not_sampled():
    space = load_space("smoke")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        trial = study.ask()
        params = space.suggest(trial)
        study.tell(trial, 0.0)
        assert ("mine_interval" in params) == params["mine_negatives"]
        assert "mine_interval" not in trial.params


# -- smoke() and with_budget() -------------------------------------------------------


def test_smoke_keeps_distinct_stacks_distinct_and_scales_schedules(tmp_path: Path):
    path = write(
        tmp_path,
        """
        budget: {epochs: 100000, eval_interval: 5000, grace_epochs: 20000, reduction_factor: 3, num_samples: 16}
        fixed: {ramp_len: 50000, mine_negatives: true}
        parameters:
          layers: {values: [[128, 128, 128], [512, 512, 256], [64]]}
          mine_interval: {distribution: int_uniform, min: 5000, max: 25000, step: 5000}
          mine_count: {values: [50, 100], when: {mine_interval: [5000, 25000]}}
          mine_pool: {values: [1000, 5000]}
        """,
    )
    smoke = load_space(path).smoke()
    by_name = {p.name: p for p in smoke.parameters}
    stacks = by_name["layers"].choices
    assert len(set(stacks)) == 3 and all(max(s) <= 32 for s in stacks)
    assert smoke.fixed["ramp_len"] == 40  # 50000 of 100000 epochs -> 40 of 80
    interval = by_name["mine_interval"]
    assert (interval.low, interval.high, interval.step) == (4, 20, 4)
    assert by_name["mine_count"].when == (("mine_interval", (4, 20)),)
    assert by_name["mine_count"].choices == (32,)
    assert by_name["mine_pool"].choices == (256,)
    assert smoke.fixed["batch_size"] == 128 and smoke.name == "space-smoke"


def test_smoke_keeps_linear_and_lookahead():
    space = load_space("full").smoke()
    by_name = {p.name: p for p in space.parameters}
    assert by_name["linear"].choices == (False, True)
    assert by_name["lookahead"].choices == load_space("full").parameters[0].choices


def test_with_budget_overrides_and_checks():
    space = load_space("lookahead")
    short = space.with_budget(epochs=30000, num_samples=4, grace_epochs=None)
    assert (short.budget.epochs, short.budget.num_samples, short.budget.grace_epochs) == (30000, 4, 20000)
    assert short.trial_config({"lookahead": 10, "lr": 1e-3}).epochs == 30000
    with pytest.raises(UsageError) as err:
        space.with_budget(epochs=15000)
    assert "lookahead.yaml" in str(err.value) and "budget.grace_epochs" in str(err.value)
    with pytest.raises(UsageError, match="budget.epochz"):
        space.with_budget(epochz=5)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_space_laptop_keeps_the_question_at_a_smaller_scale(path: Path):
    space = load_space(path)
    laptop = space.laptop()
    b, full = laptop.budget, space.budget
    assert laptop.name == f"{space.name}-laptop"
    assert b.epochs == min(full.epochs, 50_000) and b.num_samples == min(full.num_samples, 24)
    # The search keeps its shape: as many evaluations, rungs at the same fractions.
    assert b.evaluations == full.evaluations and b.reduction_factor == full.reduction_factor
    assert b.grace_epochs / b.epochs == pytest.approx(full.grace_epochs / full.epochs, rel=0.01)
    # Every searched setting keeps its choices or range kind, lookahead its values.
    assert [p.name for p in laptop.parameters] == [p.name for p in space.parameters]
    for before, after in zip(space.parameters, laptop.parameters):
        assert after.distribution == before.distribution
        assert len(after.choices) == len(before.choices), before.name
        if before.name == "lookahead":
            assert after.choices == before.choices
    factor = b.epochs / full.epochs
    for params in sample(laptop, optuna.samplers.RandomSampler(seed=5)):
        check_conditions(laptop, params)
        config = laptop.trial_config(params)
        assert config.batch_size <= 256 and all(w <= 256 for w in config.hidden_layers)
        if config.mine_negatives:
            assert config.first_mining_epoch <= config.epochs, "mining must happen in the laptop run"
    if "ramp_len" in space.fixed:
        assert laptop.fixed["ramp_len"] == round(space.fixed["ramp_len"] * factor)


def test_laptop_divides_widths_and_keeps_stacks_apart_and_in_order():
    laptop = load_space("model_size").laptop()
    stacks = {p.name: p for p in laptop.parameters}["layers"].choices
    assert stacks == (
        (16, 16, 16),
        (32, 32, 32),
        (64, 64, 32),
        (128, 64, 32, 16),
        (256, 128, 64, 32, 16),
        (256, 128, 128, 64, 64, 64, 32, 16, 16),
    )
    assert load_space("lookahead").laptop().fixed["layers"] == (256, 128, 128, 64, 64, 64, 32, 16, 16)
    assert {p.name: p for p in laptop.parameters}["linear"].choices == (False, True)


def test_laptop_divides_less_rather_than_merge_stacks(tmp_path: Path):
    path = write(
        tmp_path,
        """
        parameters:
          layers: {values: [[128], [64], [32]]}
        """,
    )
    stacks = {p.name: p for p in load_space(path).laptop().parameters}["layers"].choices
    # Divided by 8 or 4 they would merge into 16-wide stacks; by 2 they stay apart.
    assert stacks == ((64,), (32,), (16,))


def test_laptop_leaves_a_small_space_small_and_scales_its_schedules(tmp_path: Path):
    assert load_space("smoke").laptop().budget == load_space("smoke").budget
    path = write(
        tmp_path,
        """
        budget: {epochs: 200000, eval_interval: 10000, grace_epochs: 40000, reduction_factor: 4, num_samples: 40}
        fixed: {decay_start: 2000, lr_patience: 4000, mine_negatives: true, batch_size: 2048}
        parameters:
          mine_interval: {values: [20000, 40000]}
        """,
    )
    laptop = load_space(path).laptop()
    assert laptop.budget == Budget(
        epochs=50000, eval_interval=2500, grace_epochs=10000, reduction_factor=4, num_samples=24
    )
    assert (laptop.fixed["decay_start"], laptop.fixed["lr_patience"], laptop.fixed["batch_size"]) == (
        500,
        1000,
        256,
    )
    assert laptop.parameters[0].choices == (5000, 10000)


@pytest.mark.parametrize("preset", ["smoke", "laptop"])
@pytest.mark.parametrize(
    "budget",
    [
        "{epochs: 1, eval_interval: 1, grace_epochs: 1, reduction_factor: 2, num_samples: 1}",
        "{epochs: 50, eval_interval: 50, grace_epochs: 50, reduction_factor: 9, num_samples: 2}",
        "{epochs: 90, eval_interval: 30, grace_epochs: 90, reduction_factor: 3, num_samples: 5}",
        "{epochs: 99999, eval_interval: 99999, grace_epochs: 7, reduction_factor: 3, num_samples: 99}",
    ],
)
def test_a_preset_budget_passes_the_budget_check(tmp_path: Path, preset: str, budget: str):
    # The presets build their budgets without build_budget (values derived from a checked
    # budget stay valid by construction); this holds them to it at the edges.
    space = load_space(write(tmp_path, f"budget: {budget}\nparameters:\n" + LR)).scaled(preset)
    values = {key: getattr(space.budget, key) for key in BUDGET_KEYS}
    assert build_budget(values, space.budget_origins()) == space.budget


def test_scaled_budget_keeps_evaluations_and_rung_fractions():
    full = Budget(epochs=100000, eval_interval=5000, grace_epochs=20000, reduction_factor=3, num_samples=24)
    assert scaled_budget(full, epochs=3000) == {
        "epochs": 3000,
        "eval_interval": 150,
        "grace_epochs": 600,
        "reduction_factor": 3,
        "num_samples": 24,
    }
    # On the same (4th) evaluation even when rounding would move it off.
    odd = scaled_budget(full, epochs=3333)
    assert odd["grace_epochs"] == 4 * odd["eval_interval"]
    assert scaled_budget(full, epochs=3000, keep=("grace_epochs",))["grace_epochs"] == 20000
    assert scaled_budget(full, epochs=10, keep=("eval_interval",)) == {
        "epochs": 10,
        "eval_interval": 5000,
        "grace_epochs": 2,
        "reduction_factor": 3,
        "num_samples": 24,
    }
    assert scaled_budget(full, epochs=2)["grace_epochs"] == 2  # never past the end


def test_budget_errors_name_flags_and_files():
    values = {
        "epochs": 3000,
        "eval_interval": 5000,
        "grace_epochs": 600,
        "reduction_factor": 3,
        "num_samples": 4,
    }
    flags = {key: Origin("flag", "--" + key.replace("_", "-")) for key in BUDGET_KEYS}
    with pytest.raises(UsageError, match=r"^--eval-interval 5000: expected at most --epochs \(3000\)$"):
        build_budget(values, flags)
    file = {key: Origin("file", "x.yaml") for key in BUDGET_KEYS}
    with pytest.raises(
        UsageError, match=r"^x.yaml: budget.eval_interval: expected at most epochs \(3000\), got 5000$"
    ):
        build_budget(values, file)
    with pytest.raises(
        UsageError, match=r"^--eval-interval 5000: expected at most budget.epochs of x.yaml \(3000\)$"
    ):
        build_budget(values, file | {"eval_interval": flags["eval_interval"]})
    with pytest.raises(UsageError, match=r"^--reduction-factor 1: expected an integer >= 2$"):
        build_budget(values | {"eval_interval": 100, "reduction_factor": 1}, flags)


# -- budget defaults -----------------------------------------------------------------


def test_defaults_follow_the_trainer():
    defaults = TrainConfig()
    assert DEFAULT_BUDGET == {
        "epochs": defaults.epochs,
        "eval_interval": defaults.eval_interval,
        "grace_epochs": defaults.epochs // 5,
        "reduction_factor": 3,
        "num_samples": 24,
    }


def test_left_out_budget_keys_get_the_defaults(tmp_path: Path):
    bare = load_space(write(tmp_path, "parameters:\n" + LR))
    assert bare.budget == Budget(**DEFAULT_BUDGET) and bare.budget_defaults == BUDGET_KEYS
    short = load_space(write(tmp_path, "budget: {epochs: 10000, num_samples: 6}\nparameters:\n" + LR))
    # eval_interval and grace_epochs follow the file's epochs, as --epochs scales them.
    assert short.budget == Budget(
        epochs=10000, eval_interval=500, grace_epochs=2000, reduction_factor=3, num_samples=6
    )
    assert short.budget_defaults == ("eval_interval", "grace_epochs", "reduction_factor")
    given = load_space(write(tmp_path, "budget: {epochs: 10000, eval_interval: 1000}\nparameters:\n" + LR))
    assert (given.budget.eval_interval, given.budget.grace_epochs) == (1000, 2000)


def test_a_minimal_file_reports_its_typo_not_its_budget(tmp_path: Path):
    message = refused(write(tmp_path, "parameters:\n  lookahed: {values: [10, 20]}\n"))
    assert "parameters.lookahed" in message and "did you mean 'lookahead'" in message
    message = refused(write(tmp_path, "budget: {epochs: 1000}\nfixed: {curriculm: true}\nparameters:\n" + LR))
    assert "fixed.curriculm" in message


def test_trial_config_refuses_bad_params():
    with pytest.raises(UsageError) as err:
        load_space("lookahead").trial_config({"lookahead": 0})
    assert "lookahead.yaml" in str(err.value) and "lookahead must be >= 1" in str(err.value)


# -- bad input -----------------------------------------------------------------------

GOOD = """
description: a test space
budget: {epochs: 1000, eval_interval: 100, grace_epochs: 200, reduction_factor: 3, num_samples: 4}
fixed: {lookahead: 10}
parameters:
  lr: {distribution: log_uniform, min: 1.0e-4, max: 3.0e-3}
"""


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def refused(path: Path, **kwargs) -> str:
    with pytest.raises(UsageError) as err:
        load_space(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_good_template_loads(tmp_path: Path):
    assert load_space(write(tmp_path, GOOD)).parameters[0].name == "lr"


BUDGET = (
    "budget: {epochs: 1000, eval_interval: 100, grace_epochs: 200, reduction_factor: 3, num_samples: 4}\n"
)
LR = "  lr: {distribution: log_uniform, min: 1.0e-4, max: 3.0e-3}\n"

BAD = {
    # case: (file text, key path the message must name, words it must contain)
    "malformed_yaml": (BUDGET + "parameters: {lr: [1, 2\n", "line 3, column 1", "not valid YAML"),
    "not_a_mapping": ("- budget\n- parameters\n", "", "expected a mapping"),
    "duplicate_key": (BUDGET + "parameters:\n" + LR + LR, "line 4, column 3", "duplicate key 'lr'"),
    "unknown_top_level": (BUDGET + "parameter:\n" + LR, "parameter", "did you mean 'parameters'"),
    "budget_not_a_mapping": ("budget: [1000, 100]\nparameters:\n" + LR, "budget", "expected a mapping"),
    "unknown_budget_key": (
        "budget: {epochs: 1000, eval_interval: 100, grace_epochs: 200, reduction_factor: 3,"
        " num_samples: 4, max_t: 5}\nparameters:\n" + LR,
        "budget.max_t",
        "unknown budget key",
    ),
    "budget_not_int": (
        BUDGET.replace("epochs: 1000", "epochs: lots") + "parameters:\n" + LR,
        "budget.epochs",
        "expected an integer",
    ),
    "grace_over_epochs": (
        BUDGET.replace("grace_epochs: 200", "grace_epochs: 2000") + "parameters:\n" + LR,
        "budget.grace_epochs",
        "at most epochs (1000), got 2000",
    ),
    "eval_over_default_epochs": (
        "budget: {eval_interval: 200000}\nparameters:\n" + LR,
        "budget.eval_interval",
        "at most the default epochs (100000), got 200000",
    ),
    "reduction_factor_1": (
        BUDGET.replace("reduction_factor: 3", "reduction_factor: 1") + "parameters:\n" + LR,
        "budget.reduction_factor",
        ">= 2",
    ),
    "zero_samples": (
        BUDGET.replace("num_samples: 4", "num_samples: 0") + "parameters:\n" + LR,
        "budget.num_samples",
        ">= 1",
    ),
    "missing_parameters": (BUDGET, "parameters", "non-empty mapping"),
    "typo_parameter": (
        BUDGET + "parameters:\n  lookahed: {values: [10, 20]}\n",
        "parameters.lookahed",
        "did you mean 'lookahead'",
    ),
    "typo_fixed": (
        BUDGET + "fixed: {curriculm: true}\nparameters:\n" + LR,
        "fixed.curriculm",
        "did you mean 'curriculum'",
    ),
    "epochs_in_fixed": (BUDGET + "fixed: {epochs: 5}\nparameters:\n" + LR, "fixed.epochs", "budget.epochs"),
    "epochs_searched": (
        BUDGET + "parameters:\n  epochs: {values: [5, 10]}\n",
        "parameters.epochs",
        "budget.epochs",
    ),
    "not_a_spec": (
        BUDGET + "parameters:\n  lookahead: [10, 20]\n",
        "parameters.lookahead",
        "expected a mapping",
    ),
    "unknown_spec_key": (
        BUDGET + "parameters:\n  lookahead: {vaules: [10, 20]}\n",
        "parameters.lookahead.vaules",
        "did you mean 'values'",
    ),
    "values_not_list": (
        BUDGET + "parameters:\n  lookahead: {values: 10}\n",
        "parameters.lookahead.values",
        "non-empty list",
    ),
    "values_empty": (
        BUDGET + "parameters:\n  lookahead: {values: []}\n",
        "parameters.lookahead.values",
        "non-empty list",
    ),
    "values_and_range": (
        BUDGET + "parameters:\n  lookahead: {values: [10], min: 1, max: 5}\n",
        "parameters.lookahead",
        "exactly one of",
    ),
    "duplicate_value": (
        BUDGET + "parameters:\n  lookahead: {values: [10, 20, 10]}\n",
        "parameters.lookahead.values[2]",
        "duplicate of values[0]",
    ),
    "layers_flat_duplicates": (
        BUDGET + "parameters:\n  layers: {values: [128, 128]}\n",
        "parameters.layers.values[1]",
        "duplicate",
    ),
    "value_wrong_type": (
        BUDGET + "parameters:\n  lookahead: {values: [10, many]}\n",
        "parameters.lookahead.values[1]",
        "expected an integer",
    ),
    "min_not_number": (
        BUDGET + "parameters:\n  lr: {distribution: uniform, min: small, max: 0.1}\n",
        "parameters.lr.min",
        "expected a number",
    ),
    "max_missing": (
        BUDGET + "parameters:\n  lr: {distribution: uniform, min: 0.1}\n",
        "parameters.lr.max",
        "missing",
    ),
    "min_over_max": (
        BUDGET + "parameters:\n  lr: {distribution: uniform, min: 0.1, max: 0.01}\n",
        "parameters.lr.min",
        "min <= max",
    ),
    "unknown_distribution": (
        BUDGET + "parameters:\n  lr: {distribution: loguniform, min: 0.001, max: 0.01}\n",
        "parameters.lr.distribution",
        "did you mean 'log_uniform'",
    ),
    "log_nonpositive": (
        BUDGET + "parameters:\n  min_anchor: {distribution: log_uniform, min: 0.0, max: 0.1}\n",
        "parameters.min_anchor.min",
        "min > 0",
    ),
    "int_uniform_on_float": (
        BUDGET + "parameters:\n  lr: {distribution: int_uniform, min: 1, max: 2}\n",
        "parameters.lr.distribution",
        "use uniform",
    ),
    "uniform_on_int": (
        BUDGET + "parameters:\n  lookahead: {distribution: uniform, min: 1, max: 2}\n",
        "parameters.lookahead.distribution",
        "use int_uniform",
    ),
    "range_on_bool": (
        BUDGET + "parameters:\n  use_t4: {min: 0, max: 1}\n",
        "parameters.use_t4",
        "use values",
    ),
    "step_not_dividing": (
        BUDGET + "parameters:\n  lookahead: {distribution: int_uniform, min: 10, max: 25, step: 10}\n",
        "parameters.lookahead.step",
        "divides",
    ),
    "step_with_log": (
        BUDGET + "parameters:\n  lookahead: {distribution: log_uniform, min: 10, max: 100, step: 10}\n",
        "parameters.lookahead.step",
        "int_uniform only",
    ),
    "fixed_and_searched": (
        BUDGET + "fixed: {lookahead: 10}\nparameters:\n  lookahead: {values: [10, 20]}\n",
        "parameters.lookahead",
        "either fixed or searched",
    ),
    "fixed_lookahead_zero": (
        BUDGET + "fixed: {lookahead: 0}\nparameters:\n" + LR,
        "fixed.lookahead",
        "lookahead must be >= 1",
    ),
    "fixed_wrong_type": (
        BUDGET + "fixed: {layers: wide}\nparameters:\n" + LR,
        "fixed.layers",
        "list of integers",
    ),
    "fixed_cross_field": (
        BUDGET + "fixed: {mine_count: 6000}\nparameters:\n" + LR,
        "fixed.mine_count",
        "mine_pool must be >=",
    ),
    "negative_lr_value": (
        BUDGET + "parameters:\n  lr: {values: [0.001, -0.01]}\n",
        "parameters.lr.values[1]",
        "lr must be a positive number",
    ),
    "negative_lr_min": (
        BUDGET + "parameters:\n  lr: {distribution: uniform, min: -0.01, max: 0.01}\n",
        "parameters.lr.min",
        "lr must be a positive number",
    ),
    "lookahead_zero_value": (
        BUDGET + "parameters:\n  lookahead: {values: [0, 10]}\n",
        "parameters.lookahead.values[0]",
        "lookahead must be >= 1",
    ),
    "bad_constant": (
        BUDGET + "parameters:\n  target_type: {value: fancy}\n",
        "parameters.target_type.value",
        "target_type must be one of",
    ),
    "when_not_mapping": (
        BUDGET + "parameters:\n  mine_count: {values: [5], when: mine_negatives}\n",
        "parameters.mine_count.when",
        "expected a mapping",
    ),
    "when_unknown_setting": (
        BUDGET + "parameters:\n  mine_negatives: {values: [false, true]}\n"
        "  mine_count: {values: [5], when: {mine_negativs: true}}\n",
        "parameters.mine_count.when.mine_negativs",
        "did you mean 'mine_negatives'",
    ),
    "when_not_in_space": (
        BUDGET + "parameters:\n  mine_count: {values: [5], when: {mine_negatives: true}}\n",
        "parameters.mine_count.when.mine_negatives",
        "neither a parameter nor a fixed key",
    ),
    "when_never_holds": (
        BUDGET + "parameters:\n  lookahead: {values: [10, 20]}\n"
        "  lr: {values: [0.001], when: {lookahead: [30, 40]}}\n",
        "parameters.lr.when.lookahead",
        "can never hold",
    ),
    "when_fixed_never_holds": (
        BUDGET + "fixed: {mine_negatives: false}\n"
        "parameters:\n  mine_count: {values: [5], when: {mine_negatives: true}}\n",
        "parameters.mine_count.when.mine_negatives",
        "can never hold",
    ),
    "when_on_itself": (
        BUDGET + "parameters:\n  lookahead: {values: [10], when: {lookahead: 10}}\n",
        "parameters.lookahead.when.lookahead",
        "itself",
    ),
    "when_circular": (
        BUDGET + "parameters:\n  lookahead: {values: [10, 20], when: {lr: 0.001}}\n"
        "  lr: {values: [0.001, 0.01], when: {lookahead: 10}}\n",
        "parameters.lookahead.when",
        "circular",
    ),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_file_is_refused_in_one_line(tmp_path: Path, case: str):
    text, key, words = BAD[case]
    path = write(tmp_path, text)
    message = refused(path)
    assert message.startswith(f"{path}: ")
    assert key in message and words in message


def test_unknown_name_lists_available(tmp_path: Path):
    write(tmp_path, GOOD, "alpha.yaml")
    write(tmp_path, GOOD, "beta.yaml")
    message = refused("gamma", spaces_dir=tmp_path)
    assert str(tmp_path / "gamma.yaml") in message and "available: alpha, beta" in message
    assert load_space("alpha", spaces_dir=tmp_path).name == "alpha"


def test_missing_file_is_refused(tmp_path: Path):
    message = refused(tmp_path / "nowhere.yml")
    assert str(tmp_path / "nowhere.yml") in message and "not found" in message


# -- the format's finer points -------------------------------------------------------


def test_conditions_order_parameters_and_accept_fixed_keys(tmp_path: Path):
    space = load_space(
        write(
            tmp_path,
            BUDGET
            + textwrap.dedent("""
        fixed: {mine_negatives: true}
        parameters:
          mine_count: {values: [5, 10], when: {mine_interval: [5000, 10000], mine_negatives: true}}
          mine_interval: {distribution: int_uniform, min: 5000, max: 20000, step: 5000}
          layers: {values: [[64, 64], [32]]}
          lr: {value: 0.002, when: {layers: [[32]]}}
        """),
        )
    )
    assert [p.name for p in space.parameters] == ["mine_interval", "mine_count", "layers", "lr"]
    for params in sample(space, optuna.samplers.RandomSampler(seed=3), n=30):
        assert ("mine_count" in params) == (params["mine_interval"] <= 10000)
        assert ("lr" in params) == (params["layers"] == [32])
        space.trial_config(params)


def test_int_log_uniform_samples_integers(tmp_path: Path):
    space = load_space(
        write(
            tmp_path,
            BUDGET
            + textwrap.dedent("""
        parameters:
          mine_pool: {distribution: log_uniform, min: 100, max: 10000}
          beta_init: {min: 0.1, max: 0.2}
        """),
        )
    )
    for params in sample(space, optuna.samplers.RandomSampler(seed=4)):
        assert isinstance(params["mine_pool"], int) and 100 <= params["mine_pool"] <= 10000
        assert isinstance(params["beta_init"], float)
