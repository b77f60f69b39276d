"""Which searched parameters matter: importances from Optuna's PED-ANOVA evaluator over
an experiment's trials as the results reader has them (no Ray, no Tune pickles), so
they come from old experiments and from searches still running alike.

The trials become an in-memory Optuna study: each trial's sampled parameters
(params.json) under the distributions of the experiment's space (its space.yaml copy,
at the scale the search ran; the range of the sampled values when no space file is
left), and one score per trial.

Which score: ASHA stops weak trials early, and a stopped trial's last objective comes
from fewer epochs than a finished one's, so mixing them would credit the settings of
the stopped trials with their short runs. Every trial is scored at one epoch instead:
the full budget when at least ENOUGH_TRIALS trials reached it; else the largest epoch
that ENOUGH_TRIALS trials reached (usually ASHA's first rung, where every trial
reports); else the epoch most trials reached. The score is the objective the search
minimised (search/objective.py) as the trial reported it at that epoch.

Why PED-ANOVA: it compares where the best trials sampled each parameter with where all
trials did, needs no scikit-learn (fANOVA and mean decrease impurity do) and draws no
random numbers, so the same trials always give the same numbers. Since Optuna 5 it
also takes conditional parameters (`when:` in a space): such a parameter counts within
the trials that sampled it, weighted by how many of the best trials are among them,
and the trials that did not sample it still count for every other parameter.

How sure: fewer than ENOUGH_TRIALS scored trials are labelled "uncertain (N trials)";
fewer than 2 trials, or fewer than 2 parameters that took two values, give no numbers
at all ("not enough").
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collatz_ray.errors import UsageError, shown
from collatz_ray.results.read import Experiment, Parameter, Trial, is_number
from collatz_ray.search.objective import METRIC
from collatz_ray.search.settings import SPACE_COPY, experiment_space
from collatz_ray.search.spaces import SearchSpace, optuna_choice

#: Scored trials below which importances are labelled uncertain: with fewer, one trial
#: more or less can reorder the list.
ENOUGH_TRIALS = 10
#: PED-ANOVA's "best trials": Optuna's default top 10%, but at least BEST_AT_LEAST
#: (half the trials when there are fewer than twice that), since one or two trials make
#: no distribution to compare.
BEST_SHARE = 0.1
BEST_AT_LEAST = 3
#: Values of Importances.status.
OK, UNCERTAIN, NOT_ENOUGH = "ok", "uncertain", "not_enough"


@dataclass(frozen=True)
class Importances:
    """What the report, the JSON and the chart say about which parameters matter."""

    status: str  # OK, UNCERTAIN or NOT_ENOUGH
    #: How sure, in a few words: "12 trials", "uncertain (4 trials)", "not enough trials (1 trial)".
    label: str
    #: Why it is uncertain or not enough ("" when OK).
    reason: str
    trials: int
    #: The epoch every trial was scored at, and whether it is the full budget.
    epoch: int | None
    full_budget: bool
    #: How the epoch was chosen, one sentence.
    scored_at: str
    #: The trials PED-ANOVA took as the best (ties at the cut included).
    best_trials: int
    #: Parameter name -> share of the importance (they sum to 1), largest first; empty
    #: when NOT_ENOUGH.
    importances: dict[str, float]
    #: Per parameter assessed: in how many of the scored trials it was sampled.
    sampled_in: dict[str, int]
    #: Parameters left out of the numbers, with why.
    not_assessed: dict[str, str]
    #: Trials left out, one line each naming the file and what is wrong with it.
    skipped: list[str]
    #: Where the parameters' ranges came from.
    distributions: str


def parameter_importances(exp: Experiment) -> Importances:
    """How much each searched parameter of `exp` decides which trials come out best."""
    space, distributions = _space(exp)
    kinds = {p.name: p for p in exp.parameters}
    names = _parameter_names(exp, space)
    values: dict[str, dict[str, Any]] = {}
    skipped = []
    for trial in exp.trials:
        if not _scores(trial):
            continue  # no score yet: nothing to check its parameters for
        try:
            values[trial.trial_id] = (
                _space_values(trial, space) if space is not None else _sampled_values(trial, kinds)
            )
        except UsageError as err:
            skipped.append(f"{err}; trial left out")
    trials = [t for t in exp.trials if t.trial_id in values]
    epoch, scores, scored_at = _choose_epoch(trials, exp.budget.epochs)
    common: dict[str, Any] = dict(
        skipped=skipped,
        distributions=distributions,
        scored_at=scored_at,
        epoch=epoch,
        trials=len(scores),
        full_budget=epoch is not None and epoch >= (exp.budget.epochs or epoch),
    )
    if len(scores) < 2:
        return _not_enough(
            f"not enough trials ({_trials(len(scores))})",
            f"{_trials(len(scores))} with a score at one epoch; importances compare at least 2",
            **common,
        )
    sampled = {n: [values[t][n] for t in scores if n in values[t]] for n in names}
    not_assessed = {n: _why_not(sampled[n], len(scores)) for n in names}
    not_assessed = {n: why for n, why in not_assessed.items() if why}
    assessed = [n for n in names if n not in not_assessed]
    if len(assessed) < 2:
        what = f"only {assessed[0]} varies" if assessed else "no parameter varies"
        return _not_enough(
            f"not enough parameters ({what})",
            f"{what} among the {len(scores)} trials: importances compare two or more",
            not_assessed=not_assessed,
            **common,
        )
    ranges = {n: _distribution(n, sampled[n], space, kinds.get(n)) for n in assessed}
    raw, best = _ped_anova(
        exp.name,
        {t: {n: v for n, v in values[t].items() if n in ranges} for t in scores},
        scores,
        ranges,
        assessed,
    )
    total = sum(raw.values())
    if total <= 0:
        return _not_enough(
            "nothing stands out",
            f"the best {best} of the {len(scores)} trials sampled every parameter as all of them did",
            not_assessed=not_assessed,
            **common,
        )
    order = sorted(assessed, key=lambda n: (-raw[n], assessed.index(n)))  # ties: the space's order
    uncertain = len(scores) < ENOUGH_TRIALS
    return Importances(
        status=UNCERTAIN if uncertain else OK,
        label=f"uncertain ({_trials(len(scores))})" if uncertain else _trials(len(scores)),
        reason=(
            f"fewer than {ENOUGH_TRIALS} trials have a score at one epoch: one trial more "
            "or less can reorder the list"
        )
        if uncertain
        else "",
        best_trials=best,
        importances={n: raw[n] / total for n in order},
        sampled_in={n: len(sampled[n]) for n in order},
        not_assessed=not_assessed,
        **common,
    )


def _trials(n: int) -> str:
    return f"{n} trial{'s' * (n != 1)}"


def _not_enough(
    label: str, reason: str, *, not_assessed: dict[str, str] | None = None, **common: Any
) -> Importances:
    return Importances(
        status=NOT_ENOUGH,
        label=label,
        reason=reason,
        best_trials=0,
        importances={},
        sampled_in={},
        not_assessed=not_assessed or {},
        **common,
    )


# -- the space and each trial's values ---------------------------------------------------------
def _space(exp: Experiment) -> tuple[SearchSpace | None, str]:
    """The space the experiment ran (its copy, else the file it named), at its scale;
    None, with why, when neither file is there or readable."""
    saved = {
        k: v for k, v in exp.settings.items() if k in ("space_name", "space_path") and isinstance(v, str)
    }
    copy = exp.path / SPACE_COPY
    named = Path(saved["space_path"]) if "space_path" in saved else None
    if not copy.is_file() and not (named is not None and named.is_file()):
        return None, "the sampled values (the experiment's space file is gone)"
    try:
        space = experiment_space(saved, exp.path)
    except UsageError as err:
        return None, f"the sampled values (the space file could not be used: {err})"
    return space, f"the space {copy if copy.is_file() else named}"


def _parameter_names(exp: Experiment, space: SearchSpace | None) -> list[str]:
    """The searched parameters in the order the report lists them (the space file's)."""
    names = [p.name for p in exp.parameters]
    if space is None:
        return names
    searched = [p.name for p in space.parameters]
    return [n for n in names if n in searched] + [n for n in searched if n not in names]


def _where(trial: Trial) -> str:
    return str(trial.path / "params.json") if trial.path is not None else f"trial {trial.trial_id}"


def _space_values(trial: Trial, space: SearchSpace) -> dict[str, Any]:
    """The trial's parameters as Optuna holds them, checked against the space: each a
    valid setting and a value the space can sample, none that its conditions call for
    missing. A trial whose params.json is damaged fails here, in one line."""
    where = _where(trial)
    searched = {p.name for p in space.parameters}
    given = {k: v for k, v in trial.params.items() if k in searched}
    config = space.trial_config(given, source=where)
    context = dict(space.fixed)
    out = {}
    for p in space.parameters:  # sampling order: a condition sees the values it names
        if p.name not in given:
            if p.active(context):
                raise UsageError(f"{where}: no {p.name}, which the space samples for this trial")
            continue
        value = getattr(config, p.name)
        if not p.can_take(value):
            raise UsageError(
                f"{where}: {p.name} {shown(given[p.name])} is not a value {space.path.name} samples"
            )
        context[p.name] = value
        out[p.name] = value if p.is_range else optuna_choice(value)
    return out


def _sampled_values(trial: Trial, kinds: dict[str, Parameter]) -> dict[str, Any]:
    """Without the space: the trial's values as they are, numbers where the parameter
    is numeric and scalars (lists joined) where it is categorical."""
    where = _where(trial)
    if not trial.params:
        raise UsageError(f"{where}: no sampled parameters")
    out = {}
    for name, raw in trial.params.items():
        value = optuna_choice(tuple(raw)) if isinstance(raw, list) else raw
        numeric = kinds[name].numeric if name in kinds else False
        if numeric and not (is_number(value) and math.isfinite(value)):
            raise UsageError(f"{where}: {name} {shown(raw)} is not a number")
        if not (value is None or isinstance(value, (bool, int, float, str))):
            raise UsageError(f"{where}: {name} {shown(raw)} is not a value a parameter takes")
        out[name] = value
    return out


# -- the score -------------------------------------------------------------------------------
def _scores(trial: Trial) -> dict[int, float]:
    """Epoch -> the objective the trial reported there (finite ones only)."""
    return {
        r["epoch"]: float(r[METRIC])
        for r in trial.reports
        if is_number(r.get(METRIC)) and math.isfinite(r[METRIC])
    }


def _choose_epoch(trials: list[Trial], budget: int | None) -> tuple[int | None, dict[str, float], str]:
    """(epoch, trial id -> score there, how the epoch was chosen): see the module's doc."""
    by_epoch: dict[int, dict[str, float]] = {}
    for trial in trials:
        for epoch, score in _scores(trial).items():
            by_epoch.setdefault(epoch, {})[trial.trial_id] = score
    if not by_epoch:
        return None, {}, "no trial has reported a score"
    full = budget or max(by_epoch)
    at_full = len(by_epoch.get(full, {}))
    enough = [e for e, s in by_epoch.items() if len(s) >= ENOUGH_TRIALS]
    at_budget = f"at the full budget (epoch {full}), which {_trials(at_full)} reached"
    if full in enough:
        return full, by_epoch[full], at_budget
    reached = f"only {at_full} reached the full budget of {full} epochs"
    if enough:
        epoch = max(enough)
        how = f"at epoch {epoch}, the largest that at least {ENOUGH_TRIALS} trials reached ({reached})"
    else:
        epoch = max(by_epoch, key=lambda e: (len(by_epoch[e]), e))
        if epoch == full:
            how = at_budget
        else:
            how = f"at epoch {epoch}, the one most trials reached ({reached})"
    return epoch, by_epoch[epoch], how


# -- Optuna ----------------------------------------------------------------------------------
def _why_not(values: list[Any], trials: int) -> str:
    """Why a parameter cannot be assessed from its values in the scored trials, or ""."""
    if not values:
        return f"not sampled in these {trials} trials"
    if len(values) < 2:
        return f"sampled in 1 of the {trials} trials"
    if len(set(values)) < 2:
        return f"one value ({shown(values[0])}) in the {len(values)} trials that sampled it"
    return ""


def _distribution(name: str, values: list[Any], space: SearchSpace | None, kind: Parameter | None) -> Any:
    """The parameter's Optuna distribution: the space's, else the span of its values."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    spec = next((p for p in space.parameters if p.name == name), None) if space is not None else None
    if spec is not None:
        if not spec.is_range:
            return CategoricalDistribution([optuna_choice(c) for c in spec.choices])
        log = spec.distribution == "log_uniform"
        assert spec.low is not None and spec.high is not None  # a range has both ends
        if isinstance(spec.low, int) and isinstance(spec.high, int):
            return IntDistribution(spec.low, spec.high, log=log, step=spec.step or 1)
        return FloatDistribution(spec.low, spec.high, log=log)
    if kind is not None and kind.numeric:
        low, high = min(values), max(values)
        return FloatDistribution(low, high, log=kind.log and low > 0)
    return CategoricalDistribution(list(dict.fromkeys(values)))


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs every study it creates and warns about experimental arguments and
    small samples; the report says what matters of that itself."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def best_count(trials: int) -> int:
    """How many trials PED-ANOVA takes as the best (BEST_SHARE, at least BEST_AT_LEAST)."""
    return max(1, math.ceil(BEST_SHARE * trials), min(BEST_AT_LEAST, trials // 2))


def _ped_anova(
    name: str,
    values: dict[str, dict[str, Any]],
    scores: dict[str, float],
    ranges: dict[str, Any],
    assessed: list[str],
) -> tuple[dict[str, float], int]:
    """(unnormalised importances, how many trials counted as the best)."""
    import optuna  # only here: the summaries open without it until there is something to assess
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    best = best_count(len(scores))
    with _quiet_optuna():
        study = optuna.create_study(study_name=name, direction="minimize")
        for trial_id, score in scores.items():
            params = values[trial_id]
            study.add_trial(
                optuna.trial.create_trial(
                    params=params, distributions={n: ranges[n] for n in params}, value=score
                )
            )
        # Half a trial below `best`: Optuna rounds quantile * trials up to a count.
        evaluator = PedAnovaImportanceEvaluator(target_quantile=(best - 0.5) / len(scores))
        raw = get_param_importances(study, evaluator=evaluator, params=assessed, normalize=False)
    cut = sorted(scores.values())[best - 1]
    return raw, sum(s <= cut for s in scores.values())
