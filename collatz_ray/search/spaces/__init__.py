"""Search spaces: which trainer settings a hyperparameter search varies, and over what.

One module per job: budget.py (what ASHA may spend, checked once, its errors naming
where each value came from), model.py (Parameter and SearchSpace: how a space's parts
fit together, and sampling), presets.py (`--smoke`, `--scale laptop`: any space at a
smaller scale) and parsing.py (a space file, found by name or path, read into a checked
SearchSpace).

Every name is also a name of this package, as it was of the single module before the
split: pickles of older experiments name `collatz_ray.search.spaces.SearchSpace` (and
its Budget and Parameter), and `collatz_ray.spaces` (collatz_ray/_moved.py) is this
package.
"""

from collatz_ray.search.spaces.budget import (
    BUDGET_KEYS,
    DEFAULT_BUDGET,
    Budget,
    Origin,
    asha_rungs,
    build_budget,
    scaled_budget,
)
from collatz_ray.search.spaces.model import DISTRIBUTIONS, Parameter, SearchSpace, optuna_choice, plain_value
from collatz_ray.search.spaces.parsing import (
    BANK_SETTING,
    BUDGET_OWNED,
    PARAMETER_KEYS,
    SPACES_DIR,
    TOP_LEVEL_KEYS,
    available_spaces,
    load_space,
)
from collatz_ray.search.spaces.presets import (
    LAPTOP_BUDGET_MAX,
    LAPTOP_CAPS,
    LAPTOP_MIN_WIDTH,
    LAPTOP_SCHEDULE_FIELDS,
    LAPTOP_WIDTH_DIVISOR,
    PRESETS,
    SCHEDULE_FIELDS,
    SMOKE_BUDGET_MAX,
    SMOKE_CAPS,
)

__all__ = [
    "BANK_SETTING",
    "BUDGET_KEYS",
    "BUDGET_OWNED",
    "DEFAULT_BUDGET",
    "DISTRIBUTIONS",
    "LAPTOP_BUDGET_MAX",
    "LAPTOP_CAPS",
    "LAPTOP_MIN_WIDTH",
    "LAPTOP_SCHEDULE_FIELDS",
    "LAPTOP_WIDTH_DIVISOR",
    "PARAMETER_KEYS",
    "PRESETS",
    "SCHEDULE_FIELDS",
    "SMOKE_BUDGET_MAX",
    "SMOKE_CAPS",
    "SPACES_DIR",
    "TOP_LEVEL_KEYS",
    "Budget",
    "Origin",
    "Parameter",
    "SearchSpace",
    "asha_rungs",
    "available_spaces",
    "build_budget",
    "load_space",
    "optuna_choice",
    "plain_value",
    "scaled_budget",
]
