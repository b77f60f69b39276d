"""Search spaces: every shipped file samples valid trainer configs (at full and smoke
scale), sampling is deterministic, and every kind of bad file is refused in one line
that names the file and the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import optuna
import pytest

from collatz_ray.trainer.config import LOG_LAYERS, TrainConfig
from collatz_ray.errors import UsageError
from collatz_ray.search.spaces import SPACES_DIR, SearchSpace, available_spaces, load_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

SHIPPED = sorted(SPACES_DIR.glob("*.yaml"))
N_TRIALS = 20


def sample(space: SearchSpace, sampler: optuna.samplers.BaseSampler,
           n: int = N_TRIALS) -> list[dict]:
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
        ["beta", "constraints", "full", "lookahead", "mining", "model_size", "smoke"])


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
    path = write(tmp_path, """
        budget: {epochs: 100000, eval_interval: 5000, grace_epochs: 20000, reduction_factor: 3, num_samples: 16}
        fixed: {ramp_len: 50000, mine_negatives: true}
        parameters:
          layers: {values: [[128, 128, 128], [512, 512, 256], [64]]}
          mine_interval: {distribution: int_uniform, min: 5000, max: 25000, step: 5000}
          mine_count: {values: [50, 100], when: {mine_interval: [5000, 25000]}}
          mine_pool: {values: [1000, 5000]}
        """)
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


BUDGET = "budget: {epochs: 1000, eval_interval: 100, grace_epochs: 200, reduction_factor: 3, num_samples: 4}\n"
LR = "  lr: {distribution: log_uniform, min: 1.0e-4, max: 3.0e-3}\n"

BAD = {
    # case: (file text, key path the message must name, words it must contain)
    "malformed_yaml": (BUDGET + "parameters: {lr: [1, 2\n", "line 3, column 1", "not valid YAML"),
    "not_a_mapping": ("- budget\n- parameters\n", "", "expected a mapping"),
    "duplicate_key": (BUDGET + "parameters:\n" + LR + LR, "line 4, column 3", "duplicate key 'lr'"),
    "unknown_top_level": (BUDGET + "parameter:\n" + LR, "parameter", "did you mean 'parameters'"),
    "missing_budget": ("parameters:\n" + LR, "budget", "expected a mapping with epochs"),
    "missing_budget_key": ("budget: {epochs: 1000, eval_interval: 100, grace_epochs: 200, reduction_factor: 3}\n"
                           "parameters:\n" + LR, "budget.num_samples", "missing"),
    "unknown_budget_key": ("budget: {epochs: 1000, eval_interval: 100, grace_epochs: 200, reduction_factor: 3,"
                           " num_samples: 4, max_t: 5}\nparameters:\n" + LR, "budget.max_t", "unknown budget key"),
    "budget_not_int": (BUDGET.replace("epochs: 1000", "epochs: lots") + "parameters:\n" + LR,
                       "budget.epochs", "expected an integer"),
    "grace_over_epochs": (BUDGET.replace("grace_epochs: 200", "grace_epochs: 2000") + "parameters:\n" + LR,
                          "budget.grace_epochs", "at most epochs"),
    "reduction_factor_1": (BUDGET.replace("reduction_factor: 3", "reduction_factor: 1") + "parameters:\n" + LR,
                           "budget.reduction_factor", ">= 2"),
    "zero_samples": (BUDGET.replace("num_samples: 4", "num_samples: 0") + "parameters:\n" + LR,
                     "budget.num_samples", ">= 1"),
    "missing_parameters": (BUDGET, "parameters", "non-empty mapping"),
    "typo_parameter": (BUDGET + "parameters:\n  lookahed: {values: [10, 20]}\n",
                       "parameters.lookahed", "did you mean 'lookahead'"),
    "typo_fixed": (BUDGET + "fixed: {curriculm: true}\nparameters:\n" + LR,
                   "fixed.curriculm", "did you mean 'curriculum'"),
    "epochs_in_fixed": (BUDGET + "fixed: {epochs: 5}\nparameters:\n" + LR, "fixed.epochs", "budget.epochs"),
    "epochs_searched": (BUDGET + "parameters:\n  epochs: {values: [5, 10]}\n", "parameters.epochs", "budget.epochs"),
    "not_a_spec": (BUDGET + "parameters:\n  lookahead: [10, 20]\n", "parameters.lookahead", "expected a mapping"),
    "unknown_spec_key": (BUDGET + "parameters:\n  lookahead: {vaules: [10, 20]}\n",
                         "parameters.lookahead.vaules", "did you mean 'values'"),
    "values_not_list": (BUDGET + "parameters:\n  lookahead: {values: 10}\n",
                        "parameters.lookahead.values", "non-empty list"),
    "values_empty": (BUDGET + "parameters:\n  lookahead: {values: []}\n",
                     "parameters.lookahead.values", "non-empty list"),
    "values_and_range": (BUDGET + "parameters:\n  lookahead: {values: [10], min: 1, max: 5}\n",
                         "parameters.lookahead", "exactly one of"),
    "duplicate_value": (BUDGET + "parameters:\n  lookahead: {values: [10, 20, 10]}\n",
                        "parameters.lookahead.values[2]", "duplicate of values[0]"),
    "layers_flat_duplicates": (BUDGET + "parameters:\n  layers: {values: [128, 128]}\n",
                               "parameters.layers.values[1]", "duplicate"),
    "value_wrong_type": (BUDGET + "parameters:\n  lookahead: {values: [10, many]}\n",
                         "parameters.lookahead.values[1]", "expected an integer"),
    "min_not_number": (BUDGET + "parameters:\n  lr: {distribution: uniform, min: small, max: 0.1}\n",
                       "parameters.lr.min", "expected a number"),
    "max_missing": (BUDGET + "parameters:\n  lr: {distribution: uniform, min: 0.1}\n",
                    "parameters.lr.max", "missing"),
    "min_over_max": (BUDGET + "parameters:\n  lr: {distribution: uniform, min: 0.1, max: 0.01}\n",
                     "parameters.lr.min", "min <= max"),
    "unknown_distribution": (BUDGET + "parameters:\n  lr: {distribution: loguniform, min: 0.001, max: 0.01}\n",
                             "parameters.lr.distribution", "did you mean 'log_uniform'"),
    "log_nonpositive": (BUDGET + "parameters:\n  min_anchor: {distribution: log_uniform, min: 0.0, max: 0.1}\n",
                        "parameters.min_anchor.min", "min > 0"),
    "int_uniform_on_float": (BUDGET + "parameters:\n  lr: {distribution: int_uniform, min: 1, max: 2}\n",
                             "parameters.lr.distribution", "use uniform"),
    "uniform_on_int": (BUDGET + "parameters:\n  lookahead: {distribution: uniform, min: 1, max: 2}\n",
                       "parameters.lookahead.distribution", "use int_uniform"),
    "range_on_bool": (BUDGET + "parameters:\n  use_t4: {min: 0, max: 1}\n", "parameters.use_t4", "use values"),
    "step_not_dividing": (BUDGET + "parameters:\n  lookahead: {distribution: int_uniform, min: 10, max: 25, step: 10}\n",
                          "parameters.lookahead.step", "divides"),
    "step_with_log": (BUDGET + "parameters:\n  lookahead: {distribution: log_uniform, min: 10, max: 100, step: 10}\n",
                      "parameters.lookahead.step", "int_uniform only"),
    "fixed_and_searched": (BUDGET + "fixed: {lookahead: 10}\nparameters:\n  lookahead: {values: [10, 20]}\n",
                           "parameters.lookahead", "either fixed or searched"),
    "fixed_lookahead_zero": (BUDGET + "fixed: {lookahead: 0}\nparameters:\n" + LR,
                             "fixed.lookahead", "lookahead must be >= 1"),
    "fixed_wrong_type": (BUDGET + "fixed: {layers: wide}\nparameters:\n" + LR, "fixed.layers", "list of integers"),
    "fixed_cross_field": (BUDGET + "fixed: {mine_count: 6000}\nparameters:\n" + LR,
                          "fixed.mine_count", "mine_pool must be >="),
    "negative_lr_value": (BUDGET + "parameters:\n  lr: {values: [0.001, -0.01]}\n",
                          "parameters.lr.values[1]", "lr must be a positive number"),
    "negative_lr_min": (BUDGET + "parameters:\n  lr: {distribution: uniform, min: -0.01, max: 0.01}\n",
                        "parameters.lr.min", "lr must be a positive number"),
    "lookahead_zero_value": (BUDGET + "parameters:\n  lookahead: {values: [0, 10]}\n",
                             "parameters.lookahead.values[0]", "lookahead must be >= 1"),
    "bad_constant": (BUDGET + "parameters:\n  target_type: {value: fancy}\n",
                     "parameters.target_type.value", "target_type must be one of"),
    "when_not_mapping": (BUDGET + "parameters:\n  mine_count: {values: [5], when: mine_negatives}\n",
                         "parameters.mine_count.when", "expected a mapping"),
    "when_unknown_setting": (BUDGET + "parameters:\n  mine_negatives: {values: [false, true]}\n"
                             "  mine_count: {values: [5], when: {mine_negativs: true}}\n",
                             "parameters.mine_count.when.mine_negativs", "did you mean 'mine_negatives'"),
    "when_not_in_space": (BUDGET + "parameters:\n  mine_count: {values: [5], when: {mine_negatives: true}}\n",
                          "parameters.mine_count.when.mine_negatives", "neither a parameter nor a fixed key"),
    "when_never_holds": (BUDGET + "parameters:\n  lookahead: {values: [10, 20]}\n"
                         "  lr: {values: [0.001], when: {lookahead: [30, 40]}}\n",
                         "parameters.lr.when.lookahead", "can never hold"),
    "when_fixed_never_holds": (BUDGET + "fixed: {mine_negatives: false}\n"
                               "parameters:\n  mine_count: {values: [5], when: {mine_negatives: true}}\n",
                               "parameters.mine_count.when.mine_negatives", "can never hold"),
    "when_on_itself": (BUDGET + "parameters:\n  lookahead: {values: [10], when: {lookahead: 10}}\n",
                       "parameters.lookahead.when.lookahead", "itself"),
    "when_circular": (BUDGET + "parameters:\n  lookahead: {values: [10, 20], when: {lr: 0.001}}\n"
                      "  lr: {values: [0.001, 0.01], when: {lookahead: 10}}\n",
                      "parameters.lookahead.when", "circular"),
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
    space = load_space(write(tmp_path, BUDGET + textwrap.dedent("""
        fixed: {mine_negatives: true}
        parameters:
          mine_count: {values: [5, 10], when: {mine_interval: [5000, 10000], mine_negatives: true}}
          mine_interval: {distribution: int_uniform, min: 5000, max: 20000, step: 5000}
          layers: {values: [[64, 64], [32]]}
          lr: {value: 0.002, when: {layers: [[32]]}}
        """)))
    assert [p.name for p in space.parameters] == ["mine_interval", "mine_count", "layers", "lr"]
    for params in sample(space, optuna.samplers.RandomSampler(seed=3), n=30):
        assert ("mine_count" in params) == (params["mine_interval"] <= 10000)
        assert ("lr" in params) == (params["layers"] == [32])
        space.trial_config(params)


def test_int_log_uniform_samples_integers(tmp_path: Path):
    space = load_space(write(tmp_path, BUDGET + textwrap.dedent("""
        parameters:
          mine_pool: {distribution: log_uniform, min: 100, max: 10000}
          beta_init: {min: 0.1, max: 0.2}
        """)))
    for params in sample(space, optuna.samplers.RandomSampler(seed=4)):
        assert isinstance(params["mine_pool"], int) and 100 <= params["mine_pool"] <= 10000
        assert isinstance(params["beta_init"], float)
