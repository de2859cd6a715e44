"""Helpers shared by the golden-tensor scripts (scripts/make_golden_*.py)."""
from __future__ import annotations

from typing import Callable, Optional

import torch

# A per-parameter override for randomize: (name, parameter, generator) -> the value to copy in, or None for
# the default draw. It must draw from the generator it is given so every parameter's values stay seeded.
ParameterRule = Callable[[str, torch.Tensor, torch.Generator], Optional[torch.Tensor]]


def randomize(module: torch.nn.Module, seed: int, std: float, rule: Optional[ParameterRule] = None) -> None:
    """Fills every parameter, in named_parameters order, from one generator seeded `seed`: ~N(0, std), or what
    `rule` returns for it. The order of draws is what makes the golden files reproducible: keep it."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            value = rule(name, p, g) if rule is not None else None
            p.copy_(torch.randn(p.shape, generator=g) * std if value is None else value)
