"""The teacher-output cache: the frozen teacher's SR output of every training image, stored once.

Response KD, MCAD-KD's four terms and DSCLoRA's pixel term read only the teacher's *output*, and
a frozen teacher's output on a given image never changes, so it is computed once per full
training image and served as the crop aligned with each (LR, HR) training patch.

Layout: ``<root>/<key digest>/`` holds one ``NNNNNN.npy`` per image (H x W x 3, HR size, in the
cache's dtype, read with ``np.load(mmap_mode="r", allow_pickle=False)`` so a crop touches only its
rows) and ``manifest.json``. The key (``cache_key``) names everything the outputs depend on: the
teacher checkpoint's SHA-256 and a digest of the weights actually loaded, the training files
(relative paths, sizes, mtimes; the LR files or the LR generator), the scale, the stored dtype and
how the teacher ran (tiling, autocast). Any change gives another folder: a stale cache is never
read, it is rebuilt. Entries are written to a temporary name and renamed, and the manifest is
written last, after every entry has been checked; a folder without a manifest is an unfinished
build that is completed (its valid entries reused), never served.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from srdistill.data.images import to_tensor

CACHE_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def check_cache_options(dtype: str, tile: int | None, overlap: int, batch_size: int) -> None:
    """One-line errors for settings the cache cannot use, before any work."""
    if dtype not in CACHE_DTYPES:
        raise ValueError(
            f"teacher.cache_builder.dtype must be one of {list(CACHE_DTYPES)}, got {dtype!r}"
        )
    if tile is not None and (type(tile) is not int or tile < 1):
        raise ValueError(
            f"teacher.cache_builder.tile must be a positive LR size or null, got {tile!r}"
        )
    if type(overlap) is not int or overlap < 0:
        raise ValueError(f"teacher.cache_builder.tile_overlap must be 0 or more, got {overlap!r}")
    if type(batch_size) is not int or batch_size < 1:
        raise ValueError(
            f"teacher.cache_builder.batch_size must be a positive integer, got {batch_size!r}"
        )


def _file_records(paths: Iterable[Path], root: Path) -> list[list]:
    records = []
    for path in paths:
        stat = path.stat()
        records.append([path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns])
    return records


def data_fingerprint(dataset) -> dict:
    """The training files a cache was made from: HR files, and LR files or the LR generator."""
    lr = None
    if dataset.lr_files is not None:
        lr_paths = [dataset.lr_files[p.stem] for p in dataset.hr_files]
        lr = _file_records(lr_paths, Path(os.path.commonpath([str(p) for p in lr_paths])))
    return {
        "hr_files": _file_records(dataset.hr_files, dataset.hr_root),
        "lr_files": lr,
        "lr_source": "lr_folder" if lr is not None else "matlab_bicubic",
    }


def weights_sha256(model: nn.Module) -> str:
    """A digest of a model's tensors (names, dtypes, shapes, bytes): the weights that actually
    run, whatever file (or built-in default) they came from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cache_key(dataset, teacher: dict, scale: int, dtype: str, compute: dict) -> dict:
    """Everything the cached outputs depend on; ``teacher`` holds the checkpoint's SHA-256 and
    ``weights_sha256``, ``compute`` how the teacher runs (tiling, autocast)."""
    return {
        "format": FORMAT_VERSION,
        "teacher": teacher,
        "data": data_fingerprint(dataset),
        "scale": int(scale),
        "dtype": dtype,
        "compute": compute,
    }


def cache_dir(root: str | Path, key: dict) -> Path:
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return Path(root) / hashlib.sha256(text.encode()).hexdigest()[:24]


def entry_path(directory: Path, index: int) -> Path:
    # names come from the index, never from a file's contents
    return directory / f"{index:06d}.npy"


def expected_shape(dataset, index: int) -> tuple[int, int, int]:
    """The teacher output's shape for image ``index``: its mod-cropped HR size (header read)."""
    with Image.open(dataset.hr_files[index]) as image:
        width, height = image.size
    scale = dataset.scale
    return height - height % scale, width - width % scale, 3


def _open_entry(path: Path, shape: Sequence[int], dtype: str) -> np.ndarray | None:
    """The stored array (memory-mapped) when it is a complete ``.npy`` of this shape and dtype."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):  # missing, truncated, not an .npy
        return None
    if array.shape != tuple(shape) or array.dtype != np.dtype(CACHE_DTYPES[dtype]):
        return None
    return array


def _write_atomic(path: Path, write: Callable) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def to_stored(sr: torch.Tensor, dtype: str) -> np.ndarray:
    """(3, H, W) float output -> (H, W, 3) array in the cache's dtype (uint8 rounds as a PNG)."""
    image = sr.detach().float().cpu().permute(1, 2, 0)
    if dtype == "uint8":
        return image.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    return image.numpy().astype(CACHE_DTYPES[dtype])


def stored_to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W, 3) stored array -> float32 (3, H, W) on the [0, 1] scale of the network."""
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).float()
    return tensor.div_(255.0) if array.dtype == np.uint8 else tensor


class TeacherOutputs:
    """Read side of a finished cache: aligned crops of the stored outputs.

    Holds only the folder, dtype and shapes (each crop opens its file memory-mapped), so it is
    cheap to copy into DataLoader workers and never keeps thousands of files open.
    """

    def __init__(self, directory: Path, dtype: str, shapes: Sequence[Sequence[int]]) -> None:
        self.directory, self.dtype = Path(directory), dtype
        self.shapes = [tuple(int(v) for v in s) for s in shapes]

    @classmethod
    def open(cls, directory: str | Path, key: dict) -> TeacherOutputs | None:
        """The cache in ``directory`` if it is finished and made for ``key``, else None."""
        directory = Path(directory)
        try:
            manifest = json.loads((directory / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(manifest, dict) or manifest.get("key") != key:
            return None
        shapes = manifest.get("shapes")
        count = len(key["data"]["hr_files"])
        if not isinstance(shapes, list) or len(shapes) != count:
            return None
        if not all(isinstance(s, list) and [type(v) for v in s] == [int] * 3 for s in shapes):
            return None
        return cls(directory, key["dtype"], shapes)

    def __len__(self) -> int:
        return len(self.shapes)

    def crop(self, index: int, top: int, left: int, height: int, width: int) -> np.ndarray:
        """Rows ``top:top+height``, columns ``left:left+width`` of image ``index``'s output."""
        path = entry_path(self.directory, index)
        array = _open_entry(path, self.shapes[index], self.dtype)
        if array is None:
            raise ValueError(
                f"teacher-output cache entry {path} is missing or damaged; delete "
                f"{self.directory} to rebuild the cache"
            )
        return np.array(array[top : top + height, left : left + width])


def _groups_by_shape(dataset, indices: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices in batches of images of one size (a batch is one tensor)."""
    by_shape: dict[tuple, list[int]] = {}
    for index in indices:
        by_shape.setdefault(expected_shape(dataset, index), []).append(index)
    return [
        group[i : i + batch_size]
        for group in by_shape.values()
        for i in range(0, len(group), batch_size)
    ]


def missing_entries(dataset, directory: Path, dtype: str, indices: Iterable[int]) -> list[int]:
    """Indices whose entry is absent or damaged (a killed build's finished entries count)."""
    return [
        i
        for i in indices
        if _open_entry(entry_path(directory, i), expected_shape(dataset, i), dtype) is None
    ]


def build_entries(
    dataset,
    forward: Callable[[torch.Tensor], torch.Tensor],
    directory: Path,
    dtype: str,
    indices: Sequence[int],
    batch_size: int = 4,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Compute and store the missing outputs among ``indices`` (this process's share); returns
    how many were computed. ``forward`` maps an LR batch (B, 3, h, w) on [0, 1] to its SR batch
    (tiling and device are its business)."""
    directory.mkdir(parents=True, exist_ok=True)
    todo = missing_entries(dataset, directory, dtype, indices)
    if progress is not None:  # entries a killed build finished count as done
        progress(len(indices) - len(todo))
    for group in _groups_by_shape(dataset, todo, batch_size):
        lq = torch.stack([to_tensor(dataset.load_pair(i)[0]) for i in group])
        sr = forward(lq)
        for i, output in zip(group, sr, strict=True):
            stored = to_stored(output, dtype)
            if stored.shape != expected_shape(dataset, i):
                raise ValueError(
                    f"the teacher's output for {dataset.hr_files[i]} is {stored.shape[:2]}, "
                    f"not {expected_shape(dataset, i)[:2]}; is the teacher x{dataset.scale}?"
                )
            _write_atomic(entry_path(directory, i), lambda f, a=stored: np.save(f, a))
        if progress is not None:
            progress(len(group))
    return len(todo)


def finish(dataset, directory: Path, key: dict) -> TeacherOutputs:
    """Check every entry, then write the manifest (the mark of a finished cache)."""
    missing = missing_entries(dataset, directory, key["dtype"], range(len(dataset.hr_files)))
    if missing:
        raise RuntimeError(
            f"teacher-output cache {directory}: {len(missing)} entries missing after the build "
            f"(first: {entry_path(directory, missing[0]).name}); is the folder shared by all ranks?"
        )
    shapes = [list(expected_shape(dataset, i)) for i in range(len(dataset.hr_files))]
    manifest = {"key": key, "shapes": shapes}
    _write_atomic(directory / MANIFEST, lambda f: f.write(json.dumps(manifest).encode()))
    return TeacherOutputs(directory, key["dtype"], shapes)
