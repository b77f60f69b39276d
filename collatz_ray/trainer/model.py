"""The Lyapunov candidate V(n) (docs/method.md).

An MLP Linear(d, h1), LeakyReLU(0.1), ..., Linear(h_last, 1), Softplus, plus 1e-6 so V
is strictly positive, and one scalar `drift_param` (beta, the adaptive target's drift
weight). The module layout is fixed by the checkpoints the published experiment's users
have on disk: keys `drift_param, net.0.weight, net.0.bias, net.2.weight, ...` with the
Linear layers at the even indices of `net`. `load_state_dict` on such a file just works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from collatz_ray.errors import UsageError, shown
from collatz_ray.syracuse.features import FeatureSpec
from collatz_ray.trainer.config import TrainConfig

LEAKY_SLOPE = 0.1
V_FLOOR = 1e-6
#: The most parameters a model may have: 8 GiB of float32 weights (the log's stack has
#: 4.4 million). A larger one is a typo in --layers or --lookahead, refused in one line
#: instead of a failed allocation.
MAX_PARAMETERS = 2**31


class LyapunovMLP(nn.Module):
    def __init__(self, in_dim: int, hidden: Sequence[int], *, beta_init: float = 0.35) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(LEAKY_SLOPE)]
            width = h
        layers += [nn.Linear(width, 1), nn.Softplus()]
        self.net = nn.Sequential(*layers)
        self.drift_param = nn.Parameter(torch.tensor(float(beta_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1) + V_FLOOR

    @property
    def beta(self) -> float:
        return float(self.drift_param.detach())


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_weights(model: LyapunovMLP, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Load a state_dict, refusing with one line (not a traceback) when the shapes do not
    match the model the flags describe."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise UsageError(
            f"{source}: layer keys do not match the model from the flags "
            f"(missing {shown(missing[:3])}, unexpected {shown(unexpected[:3])}); check --layers/--linear"
        )
    for key, tensor in expected.items():
        got = tuple(state[key].shape)
        if got != tuple(tensor.shape):
            raise UsageError(
                f"{source}: {key} has shape {shown(list(got))} but the flags give {list(tensor.shape)}; "
                "check --layers, --lookahead, --linear, --k-only"
            )
    model.load_state_dict(state)


def build_model(config: TrainConfig) -> LyapunovMLP:
    """The model a config describes, freshly initialised."""
    spec = FeatureSpec(config.lookahead, k_only=config.k_only, k_shifted=config.k_shifted)
    widths = (spec.dim, *config.hidden_layers, 1)
    size = sum((a + 1) * b for a, b in zip(widths, widths[1:])) + 1  # weights, biases, drift_param
    if size > MAX_PARAMETERS:
        layers = shown(list(config.hidden_layers)) if config.hidden_layers else "(linear)"
        raise UsageError(
            f"layers {layers} at lookahead {config.lookahead} "
            f"make a model of {size:.3g} parameters; at most {MAX_PARAMETERS:.3g}"
        )
    return LyapunovMLP(spec.dim, config.hidden_layers, beta_init=config.beta_init)
