"""Paired (LR, HR) training patches from folders of HR images.

HR images are found recursively. LR images come from an LR folder in DIV2K naming
(``0001x4.png`` for ``0001.png``, searched recursively) when one is given, otherwise they are made
from the mod-cropped HR with the MATLAB-compatible bicubic and cached (on disk under
``lr_cache_dir`` when set, else in memory per worker). With ``decoded_cache`` the decoded images
(HR, LR files and generated LR) are kept under ``lr_cache_dir`` as uint8 ``.npy`` entries read
memory-mapped, so a patch costs reading its rows instead of decoding a whole PNG. Every cache entry
is named after the SHA-256 of its source file, hashed once when the dataset is built, and checked
when read (``srdistill.data.decoded_cache``): an entry that does not check out is made again.
With a cache, a source is decoded from the very bytes that were hashed again when read: a file
changed since the dataset was built is refused (restart the run), never cached under the key of
the content it replaced. Entry names hold the digest and at most ``NAME_BYTES`` bytes of the
source's name, so a long file name never makes a name too long for the file system.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from srdistill.checksums import file_sha256
from srdistill.data.bicubic import imresize
from srdistill.data.decoded_cache import image_size, read_decoded, write_decoded
from srdistill.data.images import list_images, mod_crop, read_rgb, to_tensor
from srdistill.data.teacher_cache import TeacherOutputs, stored_to_tensor
from srdistill.data.validation import BAD_IMAGE_POLICIES, describe_bad_images, find_bad_images

NAME_BYTES = 48  # of a source's name kept in its entries' names, for whoever lists the cache


def _short_name(name: str) -> str:
    """At most ``NAME_BYTES`` bytes of ``name`` (UTF-8, never a cut character): entry names stay
    far below the file system's 255 bytes, temporaries included, whatever the image's name."""
    return name.encode()[:NAME_BYTES].decode(errors="ignore")


class _SourceBytes(io.BytesIO):
    """A file's bytes in memory that print as its path, so decoding errors name the file."""

    def __init__(self, data: bytes, path: Path) -> None:
        super().__init__(data)
        self.path = path

    def __str__(self) -> str:
        return str(self.path)


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
        self.cache_dir = self._cache_dir(lr_cache_dir)
        self._digests: dict[Path, str] = {}
        if self.cache_dir is not None:  # here, once, before loader workers copy the dataset
            self.hash_sources()
        self.decoded_cache = decoded_cache
        self._memory_cache: dict[int, np.ndarray] = {}
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

    def _cache_dir(self, lr_cache_dir: str | Path | None) -> Path | None:
        if lr_cache_dir is None:
            return None
        key = hashlib.sha1(str(self.hr_root.resolve()).encode()).hexdigest()[:12]
        return Path(lr_cache_dir) / key / f"X{self.scale}"

    def __len__(self) -> int:
        return len(self.hr_files) * self.repeat

    def source_digest(self, path: Path) -> str:
        """SHA-256 of a training file's bytes, the key of every cache entry made from it;
        read once per process (``hash_sources`` reads them all when the dataset is built)."""
        digest = self._digests.get(path)
        if digest is None:
            digest = self._digests[path] = file_sha256(path)
        return digest

    def hash_sources(self) -> None:
        """Hash every HR (and LR folder) file now, so loader workers inherit the digests."""
        for path in self.hr_files:
            self.source_digest(path)
            lr_path = self._lr_file(path)
            if lr_path is not None:
                self.source_digest(lr_path)

    def _entry_path(self, index: int, kind: str) -> Path:
        if self.cache_dir is None:
            raise ValueError("this dataset has no lr_cache_dir")
        path = self.hr_files[index]
        relative = path.relative_to(self.hr_root)
        # the content digest keeps a.png and a.jpg apart, and a replaced image apart from the one
        # it replaced, whatever its size and mtime; the name is only for people reading the folder
        digest = self.source_digest(path)[:32]
        name = f"{_short_name(relative.name)}.{digest}.x{self.scale}.{kind}.npy"
        return self.cache_dir / relative.parent / name

    def lr_cache_path(self, index: int) -> Path:
        """Where the generated LR of HR image ``index`` is cached on disk: named after the HR
        file's content digest, so a replaced image never meets the old image's LR."""
        return self._entry_path(index, "lr")

    def decoded_cache_path(self, index: int) -> Path:
        """Where the decoded, mod-cropped HR image ``index`` is cached (``decoded_cache``); keyed
        like ``lr_cache_path``, next to it."""
        return self._entry_path(index, "hr")

    def _lr_file_cache_path(self, lr_path: Path) -> Path:
        """Where a file of the LR folder is cached decoded: keyed by that folder, name and
        content digest, as the HR images are."""
        assert self.cache_dir is not None and self.lr_root is not None
        key = hashlib.sha1(str(self.lr_root.resolve()).encode()).hexdigest()[:12]
        relative = lr_path.relative_to(self.lr_root)
        name = f"{_short_name(relative.name)}.{self.source_digest(lr_path)[:32]}.decoded.npy"
        return self.cache_dir.parent.parent / key / "decoded" / relative.parent / name

    def _decoded(self, source: Path, cache_file: Path, crop: int) -> np.ndarray:
        """``source`` decoded and mod-cropped to ``crop``: from ``cache_file`` when it holds that
        image of the size the source's header gives, else decoded and written there."""
        identity = f"decoded:{self.source_digest(source)}:mod{crop}"
        size = image_size(source)
        if size is not None:
            shape = (size[0] - size[0] % crop, size[1] - size[1] % crop, 3)
            cached = read_decoded(cache_file, identity, shape)
            if cached is not None:
                return cached
        image = mod_crop(self._decode(source), crop)
        write_decoded(cache_file, image, identity)
        return image

    def _decode(self, source: Path) -> np.ndarray:
        """``source`` decoded; with a cache, from the bytes just hashed, refused when they are
        not the content its cache entries are keyed by (the file changed during the run)."""
        if self.cache_dir is None:
            return read_rgb(source)[0]
        data = source.read_bytes()
        if hashlib.sha256(data).hexdigest() != self.source_digest(source):
            raise ValueError(
                f"training image {source} changed since the dataset was built; restart the run"
            )
        return read_rgb(_SourceBytes(data, source))[0]

    def _read_hr(self, index: int) -> np.ndarray:
        path = self.hr_files[index]
        if self.decoded_cache:
            return self._decoded(path, self.decoded_cache_path(index), self.scale)
        return mod_crop(self._decode(path), self.scale)

    def _read_lr_file(self, lr_path: Path) -> np.ndarray:
        if self.decoded_cache:
            return self._decoded(lr_path, self._lr_file_cache_path(lr_path), 1)
        return self._decode(lr_path)

    def _generated_lr(self, index: int, hr: np.ndarray) -> tuple[np.ndarray, Path | None]:
        """The LR made from ``hr`` and the cache file it was read from or written to."""
        if self.cache_dir is None:
            if index not in self._memory_cache:
                self._memory_cache[index] = imresize(hr, scale=1.0 / self.scale)
            return self._memory_cache[index], None
        entry = self.lr_cache_path(index)
        identity = f"bicubic-lr:{self.source_digest(self.hr_files[index])}:x{self.scale}"
        shape = (hr.shape[0] // self.scale, hr.shape[1] // self.scale, 3)
        lr = read_decoded(entry, identity, shape)
        if lr is None:
            lr = imresize(np.asarray(hr), scale=1.0 / self.scale)
            write_decoded(entry, lr, identity)
        # without decoded_cache the LR is read whole, as the decoded HR is
        return (lr if self.decoded_cache else np.array(lr)), entry

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
        hr = self._read_hr(index)
        lr_path = self._lr_file(path)
        if lr_path is None:
            lr, lr_path = self._generated_lr(index, hr)
        else:
            lr = self._read_lr_file(lr_path)
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
