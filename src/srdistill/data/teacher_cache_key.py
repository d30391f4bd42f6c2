"""What a teacher-output cache folder is named after: everything the cached outputs depend on.

The key holds the teacher checkpoint's SHA-256 and a digest of the weights actually loaded, the
training files (relative paths and the SHA-256 of their bytes; the LR files or the LR
generator), the scale, the stored dtype and how the teacher ran (tiling, autocast). Any change
gives another folder (``cache_dir``), so a stale cache is never read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

CACHE_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}
FORMAT_VERSION = 2  # 1: files keyed by size and mtime, entries without checksums


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


def _file_records(dataset, paths: Iterable[Path], root: Path) -> list[list]:
    """[relative path, SHA-256 of the bytes] per file (the dataset hashes each once a run)."""
    return [[path.relative_to(root).as_posix(), dataset.source_digest(path)] for path in paths]


def data_fingerprint(dataset) -> dict:
    """The training files a cache was made from: HR files, and LR files or the LR generator."""
    lr = None
    if dataset.lr_files is not None:
        lr_paths = [dataset.lr_files[p.stem] for p in dataset.hr_files]
        root = Path(os.path.commonpath([str(p) for p in lr_paths]))
        lr = _file_records(dataset, lr_paths, root)
    return {
        "hr_files": _file_records(dataset, dataset.hr_files, dataset.hr_root),
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


def key_digest(key: dict) -> str:
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def cache_dir(root: str | Path, key: dict) -> Path:
    return Path(root) / key_digest(key)[:24]
