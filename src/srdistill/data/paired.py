"""Paired (LR, HR) training patches from folders of HR images.

HR images are found recursively. LR images come from an LR folder in DIV2K naming
(``0001x4.png`` for ``0001.png``, searched recursively) when one is given, otherwise they are made
from the mod-cropped HR with the MATLAB-compatible bicubic. Decoded images and generated LR are
cached, keyed by the content of their source files (``srdistill.data.image_cache``).
"""

from __future__ import annotations

import bisect
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from srdistill.data.image_cache import TrainingImageCache
from srdistill.data.images import list_images, to_tensor
from srdistill.data.teacher_cache import TeacherOutputs, stored_to_tensor
from srdistill.data.validation import BAD_IMAGE_POLICIES, describe_bad_images, find_bad_images


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
    top, left = random_crop_origin(lr.shape, patch, generator)
    lr_patch = lr[top : top + patch, left : left + patch]
    hr_patch = hr[top * scale : (top + patch) * scale, left * scale : (left + patch) * scale]
    return lr_patch, hr_patch


def random_crop_origin(
    lr_shape: tuple[int, ...], patch: int, generator: torch.Generator | None = None
) -> tuple[int, int]:
    """The top-left LR pixel of a random ``patch`` x ``patch`` crop."""
    return _draw(lr_shape[0] - patch, generator), _draw(lr_shape[1] - patch, generator)


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
        on_bad_image: str = "error",
        keep_in_memory: bool = False,
        decoded_cache: bool = False,
    ) -> None:
        if scale < 1 or lr_patch_size < 1 or repeat < 1:
            raise ValueError("scale, lr_patch_size and repeat must be positive integers")
        if on_bad_image not in BAD_IMAGE_POLICIES:
            raise ValueError(
                f"data.on_bad_image must be one of {BAD_IMAGE_POLICIES}, got {on_bad_image!r}"
            )
        if decoded_cache and lr_cache_dir is None:
            raise ValueError(
                "data.decoded_cache=true needs data.lr_cache_dir (where its .npy files go); set "
                "one, or data.decoded_cache=false"
            )
        self.hr_root = Path(hr_root)
        self.hr_files = list_images(self.hr_root)
        self.scale, self.patch, self.augment, self.repeat = scale, lr_patch_size, augment, repeat
        self.lr_root = Path(lr_root) if lr_root is not None else None
        self.lr_files = _index_lr_folder(self.lr_root, scale) if self.lr_root is not None else None
        if self.lr_files is not None:
            missing = [p.name for p in self.hr_files if p.stem not in self.lr_files]
            if missing:
                raise FileNotFoundError(
                    f"LR folder {lr_root} has no '<name>x{scale}' file for {len(missing)} HR "
                    f"images (first: {missing[0]}); fix lr_root or leave it null to generate LR"
                )
        self._drop_bad_images(on_bad_image)
        self.cache = TrainingImageCache(
            self.hr_root, self.lr_root, scale, lr_cache_dir, decoded_cache
        )
        if self.cache_dir is not None:  # here, once, before loader workers copy the dataset
            self.hash_sources()
        # decoded (LR, HR) pairs per worker: for small sets, where decoding a large PNG for every
        # patch would cost more than the training step itself
        self.keep_in_memory = keep_in_memory
        self._pairs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.teacher_outputs: TeacherOutputs | None = None

    def _lr_file(self, hr_path: Path) -> Path | None:
        return self.lr_files[hr_path.stem] if self.lr_files is not None else None

    def _drop_bad_images(self, on_bad_image: str) -> None:
        """Check every pair before training: all problems are reported at once, not when drawn."""
        lr_files = [self._lr_file(p) for p in self.hr_files]
        problems = find_bad_images(self.hr_files, lr_files, self.scale, self.patch)
        if not problems:
            return
        summary = describe_bad_images(problems)
        if on_bad_image == "error" or len(problems) == len(self.hr_files):
            raise ValueError(
                f"training data {self.hr_root}: {summary}; fix or remove them, or set "
                f"data.on_bad_image=skip to train without them"
                + ("" if on_bad_image == "error" else " (here none would be left)")
            )
        warnings.warn(f"training data {self.hr_root}: skipping {summary}", stacklevel=2)
        self.hr_files = [p for p in self.hr_files if p not in problems]

    @property
    def cache_dir(self) -> Path | None:
        """Where this set's cache entries go (None: no ``lr_cache_dir``)."""
        return self.cache.directory

    @property
    def decoded_cache(self) -> bool:
        """Whether decoded images are cached too (``data.decoded_cache``)."""
        return self.cache.decoded

    def __len__(self) -> int:
        return len(self.hr_files) * self.repeat

    def source_digest(self, path: Path) -> str:
        """SHA-256 of a training file's bytes, the key of every cache entry made from it;
        read once per process (``hash_sources`` reads them all when the dataset is built)."""
        return self.cache.source_digest(path)

    def hash_sources(self) -> None:
        """Hash every HR (and LR folder) file now, so loader workers inherit the digests."""
        sources = [[path, self._lr_file(path)] for path in self.hr_files]
        self.cache.hash_sources(p for pair in sources for p in pair if p is not None)

    def lr_cache_path(self, index: int) -> Path:
        """Where the generated LR of HR image ``index`` is cached on disk: named after the HR
        file's content digest, so a replaced image never meets the old image's LR."""
        return self.cache.entry_path(self.hr_files[index], "lr")

    def decoded_cache_path(self, index: int) -> Path:
        """Where the decoded, mod-cropped HR image ``index`` is cached (``decoded_cache``); keyed
        like ``lr_cache_path``, next to it."""
        return self.cache.entry_path(self.hr_files[index], "hr")

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The whole mod-cropped HR image and its LR, uint8 (H, W, 3), decoded once per worker
        when ``keep_in_memory``."""
        if not self.keep_in_memory:
            return self._read_pair(index)
        if index not in self._pairs:
            self._pairs[index] = self._read_pair(index)
        return self._pairs[index]

    def _read_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The whole mod-cropped HR image and its LR, read from disk.

        Whatever the LR comes from (LR folder, disk cache, generated), it must be exactly the
        HR size / scale; a mismatch names both files."""
        path = self.hr_files[index]
        hr = self.cache.read_hr(path)
        lr_path = self._lr_file(path)
        if lr_path is None:
            lr, lr_path = self.cache.generated_lr(path, hr)
        else:
            lr = self.cache.read_lr_file(lr_path)
        if lr.shape[0] * self.scale != hr.shape[0] or lr.shape[1] * self.scale != hr.shape[1]:
            source = lr_path if lr_path is not None else "generated LR"
            raise ValueError(
                f"{source}: LR size {lr.shape[0]}x{lr.shape[1]} does not match HR {path} "
                f"({hr.shape[0]}x{hr.shape[1]} after mod-crop) / {self.scale}; delete or "
                f"replace the LR file"
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
        top, left = random_crop_origin(lr.shape, self.patch, generator)
        patch, scale = self.patch, self.scale
        crops = [
            lr[top : top + patch, left : left + patch],
            hr[top * scale : (top + patch) * scale, left * scale : (left + patch) * scale],
        ]
        if self.teacher_outputs is not None:  # the same HR area of the teacher's output
            image = index % len(self.hr_files)
            crops.append(
                self.teacher_outputs.crop(image, top * scale, left * scale, *crops[1].shape[:2])
            )
        if self.augment:
            crops = random_dihedral(crops, generator)
        item = {"lq": to_tensor(crops[0]), "gt": to_tensor(crops[1])}
        if self.teacher_outputs is not None:
            item["sr_t"] = stored_to_tensor(crops[2])
        return item

    def attach_teacher_outputs(self, outputs: TeacherOutputs | None) -> None:
        """Serve each patch's crop of the teacher's output as ``sr_t`` (None: stop serving)."""
        if outputs is not None and len(outputs) != len(self.hr_files):
            raise ValueError(
                f"teacher-output cache {outputs.directory} holds {len(outputs)} images, the "
                f"training set {self.hr_root} {len(self.hr_files)}"
            )
        self.teacher_outputs = outputs


class PairedConcatDataset(ConcatDataset):
    """Several training sets as one (DF2K = DIV2K + Flickr2K); passes per-sample seeds through."""

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        if not isinstance(index, tuple):
            return super().__getitem__(index)
        flat, seed = index
        part = bisect.bisect_right(self.cumulative_sizes, flat)
        local = flat - (self.cumulative_sizes[part - 1] if part else 0)
        return self.datasets[part][(local, seed)]
