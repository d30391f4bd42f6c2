"""Named intermediate features ("taps") for feature-based distillation.

Every backbone implements ``_forward(x, record)`` and calls ``feat = record(name, feat)`` at each
point a distillation loss may read, continuing with what the recorder returns. ``forward``
passes a recorder that returns its input, so asking for features never changes the output and
costs nothing when nobody asks; ``forward_replacing`` returns a different tensor at one tap, so
a method can run the rest of a network on a feature of its own (MiPKD's block path).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

Recorder = Callable[[str, torch.Tensor], torch.Tensor]


def _ignore(name: str, tensor: torch.Tensor) -> torch.Tensor:
    return tensor


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
        self._check_tap_names(wanted)
        feats: dict[str, torch.Tensor] = {}

        def record(name: str, tensor: torch.Tensor) -> torch.Tensor:
            if name in wanted:
                feats[name] = tensor
            return tensor

        out = self._forward(x, record)
        return out, feats

    def forward_replacing(self, x: torch.Tensor, tap: str, feature: torch.Tensor) -> torch.Tensor:
        """The output when the feature at ``tap`` is replaced by ``feature`` (same shape).

        Layers before the tap still run on ``x`` (their results are discarded where the
        replacement cuts them off); gradients flow from the output into ``feature``.
        """
        self._check_tap_names({tap})

        def record(name: str, tensor: torch.Tensor) -> torch.Tensor:
            if name != tap:
                return tensor
            if feature.shape != tensor.shape:
                raise ValueError(
                    f"replacement for tap {tap!r} has shape {tuple(feature.shape)}, "
                    f"the network's feature there has {tuple(tensor.shape)}"
                )
            return feature

        return self._forward(x, record)

    def _check_tap_names(self, wanted: set[str]) -> None:
        unknown = sorted(wanted - set(self.tap_names))
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no tap(s) {unknown}; available: {list(self.tap_names)}"
            )
