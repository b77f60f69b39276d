"""Module paths of earlier layouts (the flat one before 0.2, renames since), which files of
older experiments still name.

Ray Tune pickles the search with the experiment (tuner.pkl, searcher-state-*.pkl): the
Optuna searcher holds the space's bound `suggest` method, the trainable holds its
settings, and each names the module its class came from. An experiment started before
the move must still `--resume`, so those old names import the modules that now hold the
same classes. Only the modules such pickles can name are listed; nothing else imports
through here.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Sequence

#: Old module -> the module that holds its classes now, or the modules it was split into.
MOVED: dict[str, str | tuple[str, ...]] = {
    "collatz_ray.arith": "collatz_ray.syracuse.arith",
    "collatz_ray.limbs": "collatz_ray.syracuse.limbs",
    "collatz_ray.features": "collatz_ray.syracuse.features",
    "collatz_ray.config": "collatz_ray.trainer.config",
    "collatz_ray.spaces": "collatz_ray.search.spaces",
    # Renamed after 0.3.0 (the name said too little): Tune pickles the search's callbacks into
    # tuner.pkl, the TensorBoard callback among them.
    "collatz_ray.search.ray.tracking": "collatz_ray.search.ray.tracker_callbacks",
    # The trainable's settings hold a replication's plan (SearchSettings.replicate); the
    # module was named like the command.
    "collatz_ray.search.replicate": "collatz_ray.search.replication",
    # The trainable's settings, its callbacks and the trial folder namer.
    "collatz_ray.ray_adapter": (
        "collatz_ray.search.settings",
        "collatz_ray.search.ray.trial",
        "collatz_ray.search.ray.callbacks",
        "collatz_ray.search.ray.tuner",
    ),
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old name as the module that replaced it (the same module object), or
    as a module holding the public names of the modules it was split into."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        new = MOVED[spec.name]
        if isinstance(new, str):
            return importlib.import_module(new)
        module = types.ModuleType(spec.name, f"{spec.name}: moved to {', '.join(new)}")
        for name in new:
            part = importlib.import_module(name)
            module.__dict__.update({k: v for k, v in vars(part).items() if not k.startswith("_")})
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass  # already executed under its new name(s)


def install() -> None:
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
