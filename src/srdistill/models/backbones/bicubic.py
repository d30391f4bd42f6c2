"""The bicubic baseline as a model: MATLAB-compatible bicubic upscaling, nothing learned."""

from __future__ import annotations

import torch

from srdistill.data.matlab_bicubic import imresize
from srdistill.models.argument_checks import SCALE, flag
from srdistill.models.taps import Recorder, TappableBackbone
from srdistill.models.variants import Family, Variant


class Bicubic(TappableBackbone):
    """Upscale by ``scale`` with MATLAB's ``imresize``.

    ``emulate_uint8`` rounds to 8 bits after each 1-D pass, as MATLAB does for uint8 images, which
    is how the classic bicubic rows of SR tables were produced.
    """

    def __init__(self, scale: int = 4, emulate_uint8: bool = True) -> None:
        super().__init__()
        self.scale = scale
        self.emulate_uint8 = emulate_uint8

    def _forward(self, x: torch.Tensor, record: Recorder) -> torch.Tensor:
        return imresize(x, scale=float(self.scale), emulate_uint8=self.emulate_uint8)


ARGUMENTS = {"scale": SCALE, "emulate_uint8": flag}
# nothing learned, no weights to recognise
FAMILY = Family(
    name="bicubic",
    variants=(Variant("bicubic", Bicubic, ARGUMENTS, {"emulate_uint8": True}),),
)
