"""What a search found, read from its files with json and pandas: no Ray, no torch.

    from collatz_ray.results import load_experiment, best_trial
    exp = load_experiment(Path("results/lookahead-20261125-101500"))
    print(best_trial(exp).metrics["traj_total_violations"])

`python -m collatz_ray.results` is the command over this package (__main__.py).
"""

from collatz_ray._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Experiment": "read",
        "Trial": "read",
        "load_experiment": "read",
        "newest_experiment": "read",
        "best_trial": "report",
        "ranked_trials": "report",
        "experiment_document": "report",
        "render_text": "report",
        "render_markdown": "report",
        "to_json": "formats",
        "to_csv": "formats",
        "export_best": "export",
        "Importances": "importance",
        "parameter_importances": "importance",
        "replication": "replicates",
        "best_trajectories": "trajectories",
        "BestTrajectories": "trajectories",
    },
)

__all__ = [
    "BestTrajectories",
    "Experiment",
    "Importances",
    "Trial",
    "best_trajectories",
    "best_trial",
    "experiment_document",
    "export_best",
    "load_experiment",
    "newest_experiment",
    "parameter_importances",
    "ranked_trials",
    "render_markdown",
    "render_text",
    "replication",
    "to_csv",
    "to_json",
]
