"""The search, without Ray: search spaces, sizing a search (budget, plan, estimate), the
objective and ranking rule, resource sizing, failure reasons, the experiment's settings,
storage rules, replication plans and trackers. The Ray side lives
in `collatz_ray.search.ray` and is imported only to run a search."""

from collatz_ray._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SearchSpace": "spaces",
        "load_space": "spaces",
        "available_spaces": "spaces",
        "objective": "objective",
        "ranked": "objective",
        "fitting_concurrency": "resources",
        "size_search": "plan",
        "SearchSettings": "settings",
        "ReplicatePlan": "replication",
        "plan_from_experiment": "replication",
        "given_plan": "replication",
        "check_storage": "storage",
        "Tracker": "tracking",
        "parse_tracker": "tracking",
    },
)

__all__ = [
    "ReplicatePlan",
    "SearchSettings",
    "SearchSpace",
    "Tracker",
    "available_spaces",
    "check_storage",
    "fitting_concurrency",
    "given_plan",
    "load_space",
    "objective",
    "parse_tracker",
    "plan_from_experiment",
    "ranked",
    "size_search",
]
