"""Intermediate features ("taps") for feature-based distillation, on any ``nn.Module``.

A tap (an entry of ``kd_taps.student`` / ``kd_taps.teacher``) is one of two things:

- a *named point* of a :class:`TappableBackbone`: a feature its ``_forward`` passes through
  ``feat = record(name, feat)`` (``tap_names``), for points that are no module's output, e.g.
  ``body`` after the global skip. A named point wins over a module of the same path;
- otherwise a *module path* from ``named_modules()`` (``body.3``, ``upsample.0``): the output of
  that module, captured with a forward hook that lives for one call only. The module must
  return a tensor and run exactly once per forward.

``forward_with_taps`` returns the output and the features; ``forward_replacing`` the output
when the feature at one tap is replaced by another (MiPKD's block path). A wrapper network may
set ``tap_root`` (the module whose paths the taps name) and ``tap_input_size(h, w)`` (the LR
size its root sees for an ``h x w`` input, when it pads): features of that size are cropped to
``h x w`` and replacements of ``h x w`` pasted over the network's own (``SpandrelNetwork``).

For named points, every backbone implements ``_forward(x, record)`` and continues with what the
recorder returns: ``forward`` passes one that returns its input, so asking for features never
changes the output and costs nothing when nobody asks.
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
            _check_shape(tap, feature, tensor)
            return feature

        return self._forward(x, record)

    def _check_tap_names(self, wanted: set[str]) -> None:
        unknown = sorted(wanted - set(self.tap_names))
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no tap(s) {unknown}; available: {list(self.tap_names)}"
            )


# ----- any nn.Module: named points first, module paths otherwise ------------------------------
MODULE_PATH_EXAMPLES = 8


def named_points(model: nn.Module) -> tuple[str, ...]:
    """The taps ``model`` records itself (a TappableBackbone's ``tap_names``); none otherwise."""
    return tuple(model.tap_names) if isinstance(model, TappableBackbone) else ()


def tap_root(model: nn.Module) -> nn.Module:
    """The module whose ``named_modules()`` paths the taps of ``model`` name."""
    root = getattr(model, "tap_root", None)
    return root if isinstance(root, nn.Module) else model


def forward_with_taps(
    model: nn.Module, x: torch.Tensor, taps: Sequence[str]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The output of ``model`` on ``x`` and ``{tap: feature}`` for ``taps``, in one forward."""
    if not taps:
        return model(x), {}
    named = [tap for tap in taps if tap in named_points(model)]
    modules = _modules_at(model, [tap for tap in taps if tap not in named])
    outputs: dict[str, list] = {tap: [] for tap in modules}
    handles = [
        module.register_forward_hook(_keeper(outputs[tap])) for tap, module in modules.items()
    ]
    try:
        out, feats = model.forward_intermediates(x, named) if named else (model(x), {})
    finally:
        for handle in handles:
            handle.remove()
    for tap, seen in outputs.items():
        feats[tap] = _crop(model, x, _one_output(tap, modules[tap], seen))
    return out, {tap: feats[tap] for tap in taps}


def _keeper(seen: list) -> Callable:
    """A forward hook appending a copy of the module's output to ``seen``: a copy, as the
    network may still write into its output in place (``ReLU(inplace=True)`` after a conv);
    returning None leaves the output as it is."""

    def keep(_module: nn.Module, _inputs, output) -> None:
        seen.append(output.clone() if isinstance(output, torch.Tensor) else output)

    return keep


def forward_replacing(
    model: nn.Module, x: torch.Tensor, tap: str, feature: torch.Tensor
) -> torch.Tensor:
    """The output of ``model`` on ``x`` when the feature at ``tap`` is ``feature`` instead.

    Gradients flow from the output into ``feature``. At a module path the module still runs,
    and its output is swapped for ``feature`` (the hook's return value).
    """
    if tap in named_points(model):
        return model.forward_replacing(x, tap, feature)
    module = _modules_at(model, [tap])[tap]
    seen: list = []

    def replace(_module: nn.Module, _inputs, output) -> torch.Tensor:
        seen.append(output)
        return _replacement(model, x, tap, module, output, feature)

    handle = module.register_forward_hook(replace)
    try:
        out = model(x)
    finally:
        handle.remove()
    _one_output(tap, module, seen)
    return out


def check_taps(model: nn.Module | None, taps: Sequence[str], role: str) -> None:
    """Fail at construction, not mid-step, when a loss asks ``role`` for a tap it lacks."""
    if model is None or not taps:
        return
    named = named_points(model)
    unknown = [tap for tap in taps if tap not in named and _module_or_none(model, tap) is None]
    if unknown:
        raise _unknown(model, unknown, f"the loss reads {role} features")


def _module_or_none(model: nn.Module, path: str) -> nn.Module | None:
    if not path:  # the root's output is the model's output, not a feature
        return None
    try:
        return tap_root(model).get_submodule(path)
    except AttributeError:
        return None


def _modules_at(model: nn.Module, taps: Sequence[str]) -> dict[str, nn.Module]:
    modules = {tap: _module_or_none(model, tap) for tap in taps}
    unknown = [tap for tap, module in modules.items() if module is None]
    if unknown:
        raise _unknown(model, unknown, "features")
    return modules


def _unknown(model: nn.Module, taps: list[str], what: str) -> ValueError:
    root = tap_root(model)
    paths = [path for path, _ in root.named_modules() if path and path.count(".") <= 1]
    paths.sort(key=lambda path: path.count("."))  # children first, then grandchildren
    shown = ", ".join(paths[:MODULE_PATH_EXAMPLES]) or "none"
    more = ", ..." if len(paths) > MODULE_PATH_EXAMPLES else ""
    return ValueError(
        f"{what} {taps}, which {type(root).__name__} neither records nor has as a module; "
        f"named points: {list(named_points(model))}; module paths: {shown}{more}"
    )


def _describe(tap: str, module: nn.Module) -> str:
    return f"tap {tap!r} ({type(module).__name__})"


def _one_output(tap: str, module: nn.Module, seen: list) -> torch.Tensor:
    """The one tensor ``module`` returned in the forward; a ValueError for anything else."""
    if not seen:
        raise ValueError(f"{_describe(tap, module)} never ran in the forward; tap one that runs")
    if len(seen) > 1:
        raise ValueError(
            f"{_describe(tap, module)} ran {len(seen)} times in one forward (shared weights); "
            "tap a module that runs once"
        )
    if not isinstance(seen[0], torch.Tensor):
        raise _not_a_tensor(tap, module, seen[0])
    return seen[0]


def _not_a_tensor(tap: str, module: nn.Module, output) -> ValueError:
    return ValueError(
        f"{_describe(tap, module)} returns a {type(output).__name__}, not a tensor; tap a "
        "module that returns one, or one of the network's named points"
    )


def _padded_size(model: nn.Module, x: torch.Tensor) -> tuple[int, int] | None:
    """The LR size the model's root sees for ``x`` when the model pads ``x``, else None."""
    size = getattr(model, "tap_input_size", None)
    if size is None:
        return None
    padded = tuple(size(*x.shape[-2:]))
    return padded if padded != tuple(x.shape[-2:]) else None


def _is_padded(feature: torch.Tensor, padded: tuple[int, int] | None) -> bool:
    return padded is not None and feature.dim() == 4 and tuple(feature.shape[-2:]) == padded


def _crop(model: nn.Module, x: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
    """``feature`` cropped to ``x``'s size when it has the size of the padded input."""
    if not _is_padded(feature, _padded_size(model, x)):
        return feature
    return feature[..., : x.shape[-2], : x.shape[-1]]


def _replacement(model, x, tap: str, module, output, feature: torch.Tensor) -> torch.Tensor:
    """What the hooked module returns instead of ``output``: ``feature``, pasted over the
    network's own feature where the model padded the input (the padding keeps its values)."""
    if not isinstance(output, torch.Tensor):
        raise _not_a_tensor(tap, module, output)
    if not _is_padded(output, _padded_size(model, x)):
        _check_shape(tap, feature, output)
        return feature.clone()  # the network may write into it in place; not into the caller's
    h, w = x.shape[-2:]
    _check_shape(tap, feature, output[..., :h, :w])
    pasted = output.clone()
    pasted[..., :h, :w] = feature
    return pasted


def _check_shape(tap: str, feature: torch.Tensor, own: torch.Tensor) -> None:
    if feature.shape != own.shape:
        raise ValueError(
            f"replacement for tap {tap!r} has shape {tuple(feature.shape)}, "
            f"the network's feature there has {tuple(own.shape)}"
        )
