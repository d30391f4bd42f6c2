"""Named intermediate features ("taps") for feature-based distillation.

Every backbone implements ``_forward(x, record)`` and calls ``record(name, tensor)`` at each
point a distillation loss may read. ``forward`` passes a no-op recorder, so asking for features
never changes the output and costs nothing when nobody asks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

Recorder = Callable[[str, torch.Tensor], None]


def _ignore(name: str, tensor: torch.Tensor) -> None:
    return None


class TappableBackbone(nn.Module):
    """Base class: ``forward(x)`` and ``forward_intermediates(x, taps)`` over one ``_forward``.

    Subclasses set ``tap_names`` (every name ``_forward`` records, in forward order) and
    ``scale`` (the upscaling factor).
    """

    tap_names: tuple[str, ...] = ()
    scale: int = 1

    def _forward(self, x: torch.Tensor, record: Recorder) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, _ignore)

    def forward_intermediates(
        self, x: torch.Tensor, taps: Sequence[str]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the SR output and a dict of the requested features, keyed by tap name."""
        wanted = set(taps)
        unknown = sorted(wanted - set(self.tap_names))
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no tap(s) {unknown}; available: {list(self.tap_names)}"
            )
        feats: dict[str, torch.Tensor] = {}

        def record(name: str, tensor: torch.Tensor) -> None:
            if name in wanted:
                feats[name] = tensor

        out = self._forward(x, record)
        return out, feats
