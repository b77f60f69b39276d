"""Files the package must not trust, made the way an attacker, a bad disk or a crash
would make them, for the tests of every layer that reads them; and a snapshot of a
directory, to show that a refused command left it as it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from collatz_ray.trainer.checkpoints import CHECKSUM_FILE, torch_bytes


def billion_laughs() -> str:
    """The classic YAML bomb: nine levels of nine aliases each, 10^9 strings in under
    500 bytes."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        name, below = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{below}"] * 9) + "]")
    return "\n".join(lines) + "\n"


class MakesMarker:
    """An object whose unpickling creates a file: what a hostile state.pt would hold
    (with os.system in place of open)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def hostile_checkpoint(directory: Path, marker: Path, *, with_checksum: bool = False) -> Path:
    """A checkpoint directory whose state.pt runs code if loaded with weights_only=False;
    with_checksum: and a checksum.json that matches it (an attacker can write both)."""
    directory.mkdir(parents=True)
    data = torch_bytes(
        {
            "format": 1,
            "config": {},
            "epoch": 10,
            "model": {},
            "optimizer": {},
            "scheduler": {},
            "sampler": {},
            "torch_rng": MakesMarker(marker),
        }
    )
    (directory / "state.pt").write_bytes(data)
    if with_checksum:
        digest = hashlib.sha256(data).hexdigest()
        (directory / CHECKSUM_FILE).write_text(json.dumps({"sha256": {"state.pt": digest}}))
    return directory


def corrupt(file: Path) -> None:
    """200 bytes overwritten in the middle, as a bad disk or a torn copy would."""
    data = bytearray(file.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 200] = bytes(200)
    file.write_bytes(bytes(data))


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` by relative path, with its bytes."""
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def broken_model(kind: str, layers: tuple[int, ...] = (8, 8)):
    """A model whose V is NaN everywhere (weights set to NaN), or +inf everywhere (an
    infinite output bias), at lookahead 10."""
    import torch

    from collatz_ray.syracuse.features import FeatureSpec
    from collatz_ray.trainer.model import LyapunovMLP

    torch.manual_seed(0)
    model = LyapunovMLP(FeatureSpec(10).dim, layers)
    with torch.no_grad():
        if kind == "nan":
            for parameter in model.parameters():
                parameter.fill_(float("nan"))
        else:
            model.net[-2].bias.fill_(float("inf"))
    return model
