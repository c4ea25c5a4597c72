"""The save format of a fitted component: its buffers, as a flat dict of tensors.

Every component lists its buffers in ``STATE``; unset buffers are ``None``.
"""

from __future__ import annotations

import torch
from torch import nn


def component_state(component: nn.Module) -> dict[str, torch.Tensor]:
    """Return the set buffers of ``component`` (those in its ``STATE``), on the CPU."""
    values = {name: getattr(component, name) for name in component.STATE}
    return {
        name: value.detach().cpu().contiguous()
        for name, value in values.items()
        if value is not None
    }


def load_component_state(component: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Set the buffers of ``component`` from ``state`` (written by :func:`component_state`).

    Buffers missing from ``state`` keep their value (``None`` when unset).

    Raises
    ------
    ValueError
        When ``state`` holds a buffer the component does not have.
    """
    unknown = set(state) - set(component.STATE)
    if unknown:
        raise ValueError(
            f"{type(component).__name__} has no state {sorted(unknown)}; it was saved by "
            "another sctranslator version: save the model again with this one."
        )
    for name, value in state.items():
        setattr(component, name, value)
