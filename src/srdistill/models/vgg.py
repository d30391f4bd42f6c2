"""A frozen VGG-19 feature extractor (up to relu5_1) for perceptual and contrastive losses.

The layers are built here, with torchvision's ``vgg19().features`` indices, so that a torchvision
state dict (``features.0.weight`` ...) loads as it is, without torchvision downloading anything:

- ``vgg19_file``: the weights come from a local file (``torch.load(weights_only=True)`` or
  safetensors, read by ``srdistill.models.checkpoint``; never unpickled code). Keys past
  ``features.28`` (deeper layers, the classifier) are ignored.
- ``vgg19_random``: the same layout with a fixed-seed He initialisation (as torchvision
  initialises an untrained VGG). A random frozen network still compares local structure, but its
  distances are not the ImageNet "perceptual" ones, so results are not comparable to papers.

``frozen_vgg19`` turns the weights into non-persistent buffers: they move with ``.to(device)``
but are not parameters (no optimiser sees them, nothing trains them) and are not written into
state dicts or run checkpoints (a run rebuilds them from its config).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from srdistill.models.checkpoint import CheckpointError, read_state_dict

log = logging.getLogger(__name__)

# torchvision's VGG-19 configuration "E" up to conv5_1: channels, "M" = 2x2 max pooling
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
# ``features`` index ranges ending after relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
VGG19_SLICE_ENDS = (2, 7, 12, 21, 30)
EMBEDDINGS = ("vgg19_random", "vgg19_file")


def _layers() -> list[nn.Module]:
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            # on "meta": no default initialisation drawing from the global random stream
            conv = nn.Conv2d(channels, item, kernel_size=3, padding=1, device="meta")
            layers += [conv, nn.ReLU(inplace=True)]
            channels = item
    return layers


class VGG19Features(nn.Module):
    """``features[0:30]`` of VGG-19, He-initialised from ``seed``; ``forward`` returns the
    relu1_1 ... relu5_1 maps."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.features = nn.Sequential(*_layers()).to_empty(device="cpu")
        self.he_init(seed)

    def he_init(self, seed: int = 0) -> VGG19Features:
        """torchvision's initialisation of an untrained VGG, from a private generator (the
        global random stream, which seeds training, is left alone)."""
        generator = torch.Generator().manual_seed(seed)
        for layer in self.features:
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(
                    layer.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
                nn.init.zeros_(layer.bias)
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps, start = [], 0
        for end in VGG19_SLICE_ENDS:
            for layer in self.features[start:end]:
                x = layer(x)
            maps.append(x)
            start = end
        return maps


def load_vgg19_weights(model: VGG19Features, path: str | Path, option: str) -> None:
    """Load ``features.*`` of a torchvision-layout VGG-19 state dict; one-line errors name
    ``option``."""
    state = read_state_dict(path, option)
    wanted = model.state_dict()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise CheckpointError(
            f"{option}={path} is not a torchvision VGG-19 state dict: {len(missing)} of its "
            f"features.* weights are missing (first: {missing[0]})"
        )
    wrong = [k for k, v in wanted.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"{option}={path}: {k} has shape {tuple(state[k].shape)}, VGG-19 needs "
            f"{tuple(wanted[k].shape)} (is it VGG-19, not VGG-16?)"
        )
    model.load_state_dict({k: state[k].float() for k in wanted})


def _as_constants(module: nn.Module) -> None:
    """Parameters -> non-persistent buffers: device moves follow, optimisers and saves do not."""
    for sub in module.modules():
        for name, param in list(sub.named_parameters(recurse=False)):
            delattr(sub, name)
            sub.register_buffer(name, param.detach(), persistent=False)


class FrozenVGG19(VGG19Features):
    """A VGG19Features that stays in eval mode and has no parameters (see ``frozen_vgg19``)."""

    def train(self, mode: bool = True) -> FrozenVGG19:
        return super().train(False)


def frozen_vgg19(
    embedding: str = "vgg19_random",
    path: str | Path | None = None,
    seed: int = 0,
    prefix: str = "",
) -> FrozenVGG19:
    """The relu1_1 ... relu5_1 extractor, weights from ``path`` (``vgg19_file``) or a fixed-seed
    He initialisation (``vgg19_random``), frozen and in eval mode. Errors name the options as
    ``{prefix}embedding`` and ``{prefix}vgg19_path``."""
    option, choice = f"{prefix}vgg19_path", f"{prefix}embedding"
    if embedding not in EMBEDDINGS:
        raise ValueError(f"{choice}={embedding!r}: give one of {', '.join(EMBEDDINGS)}")
    if embedding == "vgg19_file" and not path:
        raise ValueError(
            f"{choice}=vgg19_file needs the weights: give {option}=PATH (a torchvision "
            "VGG-19 state dict, .pth or .safetensors)"
        )
    if embedding == "vgg19_random" and path:
        raise ValueError(
            f"{option}={path} is set but {choice}=vgg19_random ignores it: add "
            f"{choice}=vgg19_file to use the file"
        )
    model = FrozenVGG19(seed)
    if embedding == "vgg19_file":
        load_vgg19_weights(model, path, option)
        log.info("VGG-19 embedding: vgg19_file, weights from %s", path)
    else:
        log.warning(
            "VGG-19 embedding: vgg19_random (seed %d): no ImageNet weights, so results are not "
            "comparable to the paper; give %s=vgg19_file and %s=PATH for those",
            seed,
            choice,
            option,
        )
    _as_constants(model)
    return model.eval()
