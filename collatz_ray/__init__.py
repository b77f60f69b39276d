"""collatz-ray: a hyperparameter search service around one trainer, which learns a
Lyapunov function V(n) for the Syracuse map (docs/method.md).

Layers, each importing only those before it:

    collatz_ray.syracuse     exact arithmetic, vectorised k-sequences, feature rows
    collatz_ray.trainer      config, model, batches, loss, evaluation, checkpoints, loop
    collatz_ray.search       search spaces, objective and ranking, settings, storage
    collatz_ray.search.ray   the only code that imports Ray
    collatz_ray.results      experiments read from disk: summaries, plots, export

The `python -m collatz_ray.<command>` modules (tune, train, evaluate, evalset, results,
bench, bench_search) sit on top and are never imported by the library. Names below load
their module on first use, so `import collatz_ray` is cheap.

The training and evaluation functions are `collatz_ray.trainer.train` and
`collatz_ray.trainer.evaluate` (the top-level names `train` and `evaluate` are the
commands' modules).
"""

from collatz_ray import _moved
from collatz_ray._lazy import lazy_exports

__version__ = "0.3.0"

_moved.install()

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "UsageError": "errors",
        "TrainConfig": "trainer.config",
        "SearchSpace": "search.spaces",
        "load_space": "search.spaces",
        "available_spaces": "search.spaces",
        "objective": "search.objective",
        "ranked": "search.objective",
        "Experiment": "results.read",
        "Trial": "results.read",
        "load_experiment": "results.read",
    },
)

__all__ = [
    "Experiment",
    "SearchSpace",
    "TrainConfig",
    "Trial",
    "UsageError",
    "__version__",
    "available_spaces",
    "load_experiment",
    "load_space",
    "objective",
    "ranked",
]
