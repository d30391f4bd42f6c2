"""Benchmark sets in the layout of the EDSR/BasicSR benchmark archives.

``<root>/<Name>/HR/*.png`` with optional ``<root>/<Name>/LR_bicubic/X{s}/<name>x{s}.png``. Where a
set has no LR files (Urban100 here), they are made from the mod-cropped HR with the
MATLAB-compatible bicubic, which reproduces the MATLAB-made files bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from srdistill.data.images import mod_crop, read_rgb, to_tensor
from srdistill.data.matlab_bicubic import imresize

STANDARD_SETS = ("Set5", "Set14", "B100", "Urban100", "Manga109")


class BenchmarkDataset(Dataset):
    """Whole-image (LR, HR) pairs of one benchmark set at one scale.

    Items: ``{"lq": (3, h, w), "gt": (3, h*s, w*s), "name": str, "gray": bool}``, floats on [0, 1].
    ``gt_uint8=True`` keeps ``gt`` as uint8 on [0, 255]: the same values for the metrics, a quarter
    of the memory on large images.
    """

    def __init__(
        self,
        root: str | Path,
        name: str,
        scale: int,
        use_lr_files: bool = True,
        gt_uint8: bool = False,
    ) -> None:
        self.name = name
        self.gt_uint8 = gt_uint8
        self.scale = scale
        self.hr_dir = Path(root) / name / "HR"
        self.lr_dir = Path(root) / name / "LR_bicubic" / f"X{scale}"
        if not self.hr_dir.is_dir():
            raise FileNotFoundError(
                f"benchmark set {name}: no folder {self.hr_dir}; check data.root or data.sets"
            )
        self.hr_files = sorted(self.hr_dir.glob("*.png"))
        if not self.hr_files:
            raise FileNotFoundError(f"benchmark set {name}: no PNG files in {self.hr_dir}")
        self.use_lr_files = use_lr_files and self.lr_dir.is_dir()

    def __len__(self) -> int:
        return len(self.hr_files)

    def _load_lr(self, hr_path: Path, hr: np.ndarray) -> np.ndarray:
        lr_path = self.lr_dir / f"{hr_path.stem}x{self.scale}.png"
        if not (self.use_lr_files and lr_path.exists()):
            return imresize(hr, scale=1.0 / self.scale)
        lr, _ = read_rgb(lr_path)
        expected = (hr.shape[0] // self.scale, hr.shape[1] // self.scale)
        if lr.shape[:2] != expected:
            raise ValueError(
                f"{lr_path}: LR size {lr.shape[:2]} does not match HR {hr.shape[:2]} / {self.scale}"
            )
        return lr

    def __getitem__(self, index: int) -> dict:
        hr_path = self.hr_files[index]
        hr, gray = read_rgb(hr_path)
        if min(hr.shape[:2]) < self.scale:
            raise ValueError(
                f"scale={self.scale}: {hr_path} is {hr.shape[0]}x{hr.shape[1]} pixels, smaller "
                "than one LR pixel at this scale; give a smaller scale"
            )
        hr = mod_crop(hr, self.scale)
        lr = self._load_lr(hr_path, hr)
        gt = _uint8_tensor(hr) if self.gt_uint8 else to_tensor(hr)
        return {"lq": to_tensor(lr), "gt": gt, "name": hr_path.stem, "gray": gray}


def _uint8_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> uint8 (3, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def available_sets(root: str | Path, names: list[str] | tuple[str, ...]) -> list[str]:
    """The subset of ``names`` that exist under ``root``, in the order given."""
    return [name for name in names if (Path(root) / name / "HR").is_dir()]
