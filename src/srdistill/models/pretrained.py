"""Networks with weights that ship inside the package (no download, ever)."""

from __future__ import annotations

from importlib import resources

from srdistill.models.argument_checks import one_of
from srdistill.models.backbones.edsr import EDSR
from srdistill.models.checkpoint import load_weights
from srdistill.models.variants import Family, Variant

SAMPLE_TEACHER_FILE = "sample_teacher_edsr_x4.safetensors"


def sample_teacher_path():
    return resources.files("srdistill.assets").joinpath(SAMPLE_TEACHER_FILE)


def sample_teacher(scale: int = 4) -> EDSR:
    """The project's own small teacher for the embedded demo: EDSR 48 ch x 8 blocks, x4.

    Trained from scratch on the embedded sample photos by ``scripts/make_sample_teacher.sh``
    (``python train.py experiment=sample_teacher``); 522,243 parameters.
    """
    if scale != 4:
        raise ValueError(f"the sample teacher is trained for x4 only, got scale={scale}")
    model = EDSR(scale=4, num_feat=48, num_block=8)
    with resources.as_file(sample_teacher_path()) as path:
        return load_weights(model, path, "sample_teacher")


# the same network as edsr_sample, whose declaration detection finds first: none here
FAMILY = Family(
    name="sample_teacher",
    variants=(Variant("sample_teacher", sample_teacher, {"scale": one_of(4)}),),
)
