"""The embedded sample set: real photos shipped inside scikit-image's wheel, no download.

They are written once as PNG files in the benchmark layout (``<dest>/SampleTrain/HR``,
``<dest>/SampleVal/HR``), so the same training and benchmark datasets read them as any other
folder. The split keeps two everyday photos (a cat, a coffee cup) for validation and trains on
the other five.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from srdistill.outputs import write_atomic

TRAIN_PHOTOS = ("astronaut", "rocket", "hubble_deep_field", "retina", "immunohistochemistry")
VAL_PHOTOS = ("chelsea", "coffee")
# the sample teacher also learns from the other real photos in the wheel: a colour street scene
# and six gray textures and scenes (replicated to RGB); never the validation photos
TEACHER_EXTRA_PHOTOS = (
    "motorcycle_left", "brick", "grass", "gravel", "camera", "coins", "cell"
)  # fmt: skip
TRAIN_SET, VAL_SET, TEACHER_SET = "SampleTrain", "SampleVal", "SampleTeacherTrain"


def default_sample_root() -> Path:
    """``$SRDISTILL_CACHE/samples``, default ``~/.cache/srdistill/samples``."""
    cache = os.environ.get("SRDISTILL_CACHE", Path.home() / ".cache" / "srdistill")
    return Path(cache) / "samples"


def load_photo(name: str) -> np.ndarray:
    """One of scikit-image's bundled photos as uint8 RGB (gray ones replicated)."""
    from skimage import data as skdata  # heavy import, only needed the first time

    if name == "motorcycle_left":  # the left view of the stereo pair
        image = skdata.stereo_motorcycle()[0]
    else:
        image = getattr(skdata, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"scikit-image sample {name!r} is not an 8-bit photo")
    return image


def materialize_samples(root: str | Path | None = None, with_teacher_set: bool = False) -> Path:
    """Write the sample photos under ``root`` (if not there yet) and return ``root``;
    ``with_teacher_set`` also writes the sample teacher's training set."""
    root = Path(root) if root is not None else default_sample_root()
    sets = ((TRAIN_SET, TRAIN_PHOTOS), (VAL_SET, VAL_PHOTOS))
    if with_teacher_set:
        sets += ((TEACHER_SET, TRAIN_PHOTOS + TEACHER_EXTRA_PHOTOS),)
    for set_name, names in sets:
        folder = root / set_name / "HR"
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            target = folder / f"{name}.png"
            if not target.exists():
                # write_atomic: a temporary name of its own (concurrent writers, e.g. DDP ranks,
                # never share one) not ending in .png (a reader listing the folder meanwhile must
                # not see it), renamed into place; a full disk names the file
                image = Image.fromarray(load_photo(name))
                write_atomic(target, lambda f, i=image: i.save(f, format="PNG"), "sample photos")
    return root


def sample_paired_dataset(
    scale: int, lr_patch_size: int = 48, root: str | Path | None = None, **kwargs
):
    """Training patches from the embedded sample photos (written to ``root`` first if needed)."""
    from srdistill.data.paired import PairedImageDataset

    hr_root = materialize_samples(root) / TRAIN_SET / "HR"
    return PairedImageDataset(hr_root, scale, lr_patch_size, **kwargs)
