"""Paired (LR, HR) training patches from folders of HR images.

HR images are found recursively. LR images come from an LR folder in DIV2K naming
(``0001x4.png`` for ``0001.png``, searched recursively) when one is given, otherwise they are made
from the mod-cropped HR with the MATLAB-compatible bicubic and cached (on disk under
``lr_cache_dir`` when set, else in memory per worker).
"""

from __future__ import annotations

import bisect
import hashlib
import uuid
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, Dataset

from srdistill.data.bicubic import imresize
from srdistill.data.images import list_images, mod_crop, read_rgb, to_tensor


def _index_lr_folder(lr_root: Path, scale: int) -> dict[str, Path]:
    suffix = f"x{scale}"
    return {p.stem[: -len(suffix)]: p for p in list_images(lr_root) if p.stem.endswith(suffix)}


def _draw(high: int, generator: torch.Generator | None) -> int:
    """A uniform integer in [0, high] from torch's RNG (restorable on resume, seeded per worker)."""
    return int(torch.randint(0, high + 1, (1,), generator=generator))


def random_aligned_crop(
    lr: np.ndarray, hr: np.ndarray, patch: int, scale: int, generator: torch.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """An LR patch ``patch`` x ``patch`` and the HR patch covering exactly the same area."""
    top = _draw(lr.shape[0] - patch, generator)
    left = _draw(lr.shape[1] - patch, generator)
    lr_patch = lr[top : top + patch, left : left + patch]
    hr_patch = hr[top * scale : (top + patch) * scale, left * scale : (left + patch) * scale]
    return lr_patch, hr_patch


def random_dihedral(
    images: list[np.ndarray], generator: torch.Generator | None = None
) -> list[np.ndarray]:
    """The same random flip / 90-degree rotation (one of 8) applied to every image."""
    hflip, vflip, transpose = (bool(_draw(1, generator)) for _ in range(3))
    out = []
    for image in images:
        if hflip:
            image = image[:, ::-1]
        if vflip:
            image = image[::-1]
        if transpose:
            image = image.transpose(1, 0, 2)
        out.append(image)
    return out


class PairedImageDataset(Dataset):
    """Random aligned (LR, HR) patches; items ``{"lq": (3, p, p), "gt": (3, p*s, p*s)}``."""

    def __init__(
        self,
        hr_root: str | Path,
        scale: int,
        lr_patch_size: int = 48,
        lr_root: str | Path | None = None,
        lr_cache_dir: str | Path | None = None,
        augment: bool = True,
        repeat: int = 1,
    ) -> None:
        if scale < 1 or lr_patch_size < 1 or repeat < 1:
            raise ValueError("scale, lr_patch_size and repeat must be positive integers")
        self.hr_root = Path(hr_root)
        self.hr_files = list_images(self.hr_root)
        self.scale, self.patch, self.augment, self.repeat = scale, lr_patch_size, augment, repeat
        self.lr_files = _index_lr_folder(Path(lr_root), scale) if lr_root is not None else None
        if self.lr_files is not None:
            missing = [p.name for p in self.hr_files if p.stem not in self.lr_files]
            if missing:
                raise FileNotFoundError(
                    f"LR folder {lr_root} has no '<name>x{scale}' file for {len(missing)} HR "
                    f"images (first: {missing[0]}); fix lr_root or leave it null to generate LR"
                )
        self.cache_dir = self._cache_dir(lr_cache_dir)
        self._memory_cache: dict[int, np.ndarray] = {}

    def _cache_dir(self, lr_cache_dir: str | Path | None) -> Path | None:
        if lr_cache_dir is None:
            return None
        key = hashlib.sha1(str(self.hr_root.resolve()).encode()).hexdigest()[:12]
        return Path(lr_cache_dir) / key / f"X{self.scale}"

    def __len__(self) -> int:
        return len(self.hr_files) * self.repeat

    def _generated_lr(self, index: int, hr: np.ndarray) -> np.ndarray:
        if self.cache_dir is None:
            if index not in self._memory_cache:
                self._memory_cache[index] = imresize(hr, scale=1.0 / self.scale)
            return self._memory_cache[index]
        relative = self.hr_files[index].relative_to(self.hr_root)
        # the full name (suffix included) keeps a.png and a.jpg apart
        cached = self.cache_dir / relative.parent / f"{relative.name}x{self.scale}.png"
        if cached.exists():
            return read_rgb(cached)[0]
        lr = imresize(hr, scale=1.0 / self.scale)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{uuid.uuid4().hex}.tmp")
        Image.fromarray(lr).save(tmp, format="PNG")
        tmp.replace(cached)
        return lr

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The whole mod-cropped HR image and its LR, uint8 (H, W, 3)."""
        path = self.hr_files[index]
        hr = mod_crop(read_rgb(path)[0], self.scale)
        if self.lr_files is None:
            return self._generated_lr(index, hr), hr
        lr = read_rgb(self.lr_files[path.stem])[0]
        if lr.shape[0] * self.scale != hr.shape[0] or lr.shape[1] * self.scale != hr.shape[1]:
            raise ValueError(
                f"{self.lr_files[path.stem]}: LR size does not match HR {path} / {self.scale}"
            )
        return lr, hr

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        """``index`` or ``(index, seed)``: with a seed the crop and flips are drawn from it
        (``ResumableRandomSampler``), otherwise from torch's global RNG."""
        index, seed = index if isinstance(index, tuple) else (index, None)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        lr, hr = self.load_pair(index % len(self.hr_files))
        if min(lr.shape[:2]) < self.patch:
            path = self.hr_files[index % len(self.hr_files)]
            raise ValueError(
                f"{path}: LR size {lr.shape[:2]} is smaller than lr_patch_size {self.patch}"
            )
        lr, hr = random_aligned_crop(lr, hr, self.patch, self.scale, generator)
        if self.augment:
            lr, hr = random_dihedral([lr, hr], generator)
        return {"lq": to_tensor(lr), "gt": to_tensor(hr)}


class PairedConcatDataset(ConcatDataset):
    """Several training sets as one (DF2K = DIV2K + Flickr2K); passes per-sample seeds through."""

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        if not isinstance(index, tuple):
            return super().__getitem__(index)
        flat, seed = index
        part = bisect.bisect_right(self.cumulative_sizes, flat)
        local = flat - (self.cumulative_sizes[part - 1] if part else 0)
        return self.datasets[part][(local, seed)]
