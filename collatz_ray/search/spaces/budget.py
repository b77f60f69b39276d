"""A search's budget: what ASHA may spend, where each value came from, and the one check
of it (`build_budget`), whose errors name what the user typed (a flag, a key of a space
file, a default, a preset or a resumed experiment's saved settings). Also the rules that
scale a budget to other epochs and place ASHA's rungs."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass

from collatz_ray.errors import UsageError, shown
from collatz_ray.trainer.config import MAX_INT, TrainConfig

BUDGET_KEYS = ("epochs", "eval_interval", "grace_epochs", "reduction_factor", "num_samples")

_TRAINER_DEFAULTS = TrainConfig()

#: What a budget key the space leaves out gets: the trainer's own run length and
#: evaluation interval, a grace period of a fifth of the run (the shipped spaces' ratio,
#: see docs/spaces.md), rungs keeping one trial in three, and 24 trials (TPE's 10
#: random start-up trials, then 14 guided ones). Left-out eval_interval and
#: grace_epochs follow the file's epochs the way --epochs scales them: a file with
#: `epochs: 10000` alone is evaluated every 500 and first judged at 2000.
DEFAULT_BUDGET = {
    "epochs": _TRAINER_DEFAULTS.epochs,
    "eval_interval": _TRAINER_DEFAULTS.eval_interval,
    "grace_epochs": _TRAINER_DEFAULTS.epochs // 5,
    "reduction_factor": 3,
    "num_samples": 24,
}


@dataclass(frozen=True)
class Budget:
    """What ASHA may spend. Each trial trains at most `epochs` and reports every
    `eval_interval`; none is stopped before `grace_epochs`; each ASHA rung keeps one
    trial in `reduction_factor`; `num_samples` trials in all.

    A plain value: `build_budget` checks values from outside (a file, flags, saved
    settings) once, naming where each came from, and makes the Budget.
    """

    epochs: int
    eval_interval: int
    grace_epochs: int
    reduction_factor: int
    num_samples: int

    def rungs(self) -> list[int]:
        """ASHA's milestones below the full run (Ray also keeps one at `epochs` when a
        power lands there, which stops nothing)."""
        return asha_rungs(
            epochs=self.epochs, grace_epochs=self.grace_epochs, reduction_factor=self.reduction_factor
        )

    @property
    def evaluations(self) -> int:
        """Evaluations of a full trial: every eval_interval, and at the end."""
        return -(-self.epochs // self.eval_interval)


@dataclass(frozen=True)
class Origin:
    """Where a budget value came from, so that an error names what the user typed: a
    flag (`--eval-interval 5000`), a key of a space file, a default the file left to
    the loader, a preset (`--scale laptop`) or a resumed experiment's saved settings.
    `where` is the flag, the file's path, the preset's flag or the experiment's name."""

    kind: str  # "flag", "file", "default", "preset", "saved", "scaled"
    where: str

    def subject(self, key: str, value: int) -> str:
        """How a message about this value starts; a flag shows its value, the others
        end the message with ', got V' (see `got`)."""
        if self.kind == "flag":
            return f"{self.where} {shown(value)}"
        if self.kind == "preset":
            return f"{self.where}: budget.{key}"
        if self.kind == "saved":
            return f"experiment {self.where}: budget.{key}"
        if self.kind == "scaled":
            return f"budget.{key} (scaled with {self.where})"
        suffix = " (left out, so the default)" if self.kind == "default" else ""
        return f"{self.where}: budget.{key}{suffix}"

    def got(self, value: int) -> str:
        return "" if self.kind == "flag" else f", got {shown(value)}"

    def name(self, key: str, subject: Origin) -> str:
        """How another value's message refers to this one."""
        if self.kind == "flag":
            return self.where
        if self.kind == "preset":
            return f"the {key} of {self.where}"
        if self.kind == "saved":
            return f"the {key} of experiment {self.where}"
        if self.kind == "default":
            return f"the default {key}"
        if self.kind == "scaled":
            return f"the {key} scaled with {self.where}"
        return (
            key if subject.kind == "file" and subject.where == self.where else f"budget.{key} of {self.where}"
        )


def build_budget(values: Mapping[str, int], origins: Mapping[str, Origin]) -> Budget:
    """A Budget of `values` whose errors name where each value came from:
    `--eval-interval 5000: expected at most --epochs (3000)`, or, from a file,
    `x.yaml: budget.grace_epochs: expected at most epochs (1000), got 2000`."""

    def refuse(key: str, what: str) -> UsageError:
        origin = origins[key]
        return UsageError(f"{origin.subject(key, values[key])}: {what}{origin.got(values[key])}")

    for key in BUDGET_KEYS:
        value = values[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise refuse(key, "expected an integer >= 1")
        if value > MAX_INT:
            raise refuse(key, f"expected at most {MAX_INT}")
    epochs = values["epochs"]
    for key in ("eval_interval", "grace_epochs"):
        if values[key] > epochs:
            raise refuse(key, f"expected at most {origins['epochs'].name('epochs', origins[key])} ({epochs})")
    if values["reduction_factor"] < 2:
        raise refuse("reduction_factor", "expected an integer >= 2")
    return Budget(**{key: values[key] for key in BUDGET_KEYS})


def scaled_budget(budget: Budget, *, epochs: int, keep: typing.Container[str] = ()) -> dict[str, int]:
    """eval_interval and grace_epochs for a run of `epochs` instead of budget.epochs,
    each unless named in `keep`: as many evaluations, and the grace period at the same
    fraction of the run (on the same evaluation, when both are scaled and it was on one).
    Returns the budget's values with these replaced."""
    factor = epochs / budget.epochs
    values = dataclasses.asdict(budget) | {"epochs": epochs}
    interval = budget.eval_interval
    if "eval_interval" not in keep:
        values["eval_interval"] = min(epochs, max(1, round(interval * factor)))
    if "grace_epochs" not in keep:
        on_evaluation = "eval_interval" not in keep and budget.grace_epochs % interval == 0
        grace = (
            budget.grace_epochs // interval * values["eval_interval"]
            if on_evaluation
            else max(1, round(budget.grace_epochs * factor))
        )
        values["grace_epochs"] = min(epochs, grace)
    return values


def asha_rungs(*, epochs: int | None, grace_epochs: int | None, reduction_factor: int | None) -> list[int]:
    """ASHA's milestones, grace * factor^k below the full budget: the epochs at which a
    trial can be stopped."""
    if not (epochs and grace_epochs and reduction_factor and reduction_factor > 1):
        return []
    out, rung = [], grace_epochs
    while rung < epochs:
        out.append(rung)
        rung *= reduction_factor
    return out
