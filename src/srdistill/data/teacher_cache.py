"""The teacher-output cache: the frozen teacher's SR output of every training image, stored once.

Response KD, MCAD-KD's four terms and DSCLoRA's pixel term read only the teacher's *output*, and
a frozen teacher's output on a given image never changes, so it is computed once per full
training image and served as the crop aligned with each (LR, HR) training patch.

Layout: ``<root>/<key digest>/`` holds one ``NNNNNN.npy`` entry per image (H x W x 3, HR size, in
the cache's dtype, memory-mapped so a crop touches only its rows; the entry format of
``srdistill.data.decoded_cache``) and ``manifest.json``. The key (``cache_key``) names everything
the outputs depend on: the teacher checkpoint's SHA-256 and a digest of the weights actually
loaded, the training files (relative paths and the SHA-256 of their bytes; the LR files or the
LR generator), the scale, the stored dtype and how the teacher ran (tiling, autocast). Any change
gives another folder: a stale cache is never read, it is rebuilt.

Each entry records the key digest and its image index (its identity) and the checksum of its
bytes; the manifest, written last after every entry has been checked, records every entry's
checksum and shape. A folder without a manifest is an unfinished build that is completed (its
entries that check out reused, the rest computed); a manifest made for another key means the
folder is emptied and built again (``prepare``). A finished cache whose manifest is malformed,
or whose entry is not a regular file or does not match the manifest, is a one-line error naming
the file and saying to delete the folder: rebuilding means running the teacher on every image.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from srdistill.data.decoded_cache import (
    EntryError,
    entry_checksum,
    open_cache_file,
    read_entry,
    write_entry,
)
from srdistill.data.images import open_image, to_tensor, upright_size
from srdistill.data.teacher_cache_key import CACHE_DTYPES, key_digest
from srdistill.outputs import write_atomic
from srdistill.regular_files import NotRegularFileError, stat_regular

MANIFEST = "manifest.json"
ENTRY_GLOB = "[0-9][0-9][0-9][0-9][0-9][0-9].npy"
OPTION = "teacher.cache_builder.dir"


def entry_path(directory: Path, index: int) -> Path:
    # names come from the index, never from a file's contents
    return directory / f"{index:06d}.npy"


def entry_identity(digest: str, index: int) -> str:
    """What entry ``index`` is: the output for that image under the key of this ``digest``
    (recorded in the entry)."""
    return f"teacher-output:{digest}:{index}"


def expected_shape(dataset, index: int) -> tuple[int, int, int]:
    """The teacher output's shape for image ``index``: its mod-cropped HR size as decoded
    (header read, EXIF orientation applied)."""
    with open_image(dataset.hr_files[index]) as image:
        height, width = upright_size(image)
    scale = dataset.scale
    return height - height % scale, width - width % scale, 3


def _checked_entry(directory: Path, digest: str, dtype: str, index: int, shape) -> np.ndarray:
    """Entry ``index`` memory-mapped; ``EntryError`` (or ``FileNotFoundError``) unless it is
    the one written for the key of ``digest`` with this shape and dtype."""
    identity = entry_identity(digest, index)
    return read_entry(entry_path(directory, index), identity, tuple(shape), CACHE_DTYPES[dtype])


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


def _read_manifest(directory: Path) -> dict | None:
    """The manifest as a dict; None when there is none, or it is not a regular JSON object
    (never written so by ``finish``: ``prepare`` starts such a folder over)."""
    try:
        fd = open_cache_file(directory / MANIFEST)
    except (FileNotFoundError, EntryError):
        return None
    with os.fdopen(fd, "rb") as f:
        try:
            manifest = json.loads(f.read())
        except (OSError, ValueError):
            return None
    return manifest if isinstance(manifest, dict) else None


def _manifest_entries(dataset, directory: Path, manifest: dict) -> tuple[list, list]:
    """(shapes, checksums) of a manifest made for this key, checked against the dataset; a
    one-line ``ValueError`` naming the manifest when they are malformed."""
    count = len(dataset.hr_files)
    shapes, checksums = manifest.get("shapes"), manifest.get("sha256")
    problem = None
    if not isinstance(shapes, list) or len(shapes) != count:
        problem = f"'shapes' is not a list of {count} image shapes"
    elif not isinstance(checksums, list) or len(checksums) != count:
        problem = f"'sha256' is not a list of {count} checksums"
    elif not all(isinstance(c, str) and re.fullmatch("[0-9a-f]{64}", c) for c in checksums):
        problem = "'sha256' holds something other than SHA-256 digests"
    else:
        for index, shape in enumerate(shapes):
            exact = isinstance(shape, list) and all(type(v) is int for v in shape)
            if not exact or shape != list(expected_shape(dataset, index)):
                problem = (
                    f"'shapes'[{index}] is {json.dumps(shape)[:40]}, not the image's "
                    f"{list(expected_shape(dataset, index))}"
                )
                break
    if problem is not None:
        raise ValueError(
            f"teacher-output cache manifest {directory / MANIFEST}: {problem}; delete "
            f"{directory} to rebuild the cache"
        )
    return shapes, checksums


class TeacherOutputs:
    """Read side of a finished cache: aligned crops of the stored outputs.

    Holds only the folder, the key's digest, dtype, shapes and checksums (each crop opens its
    file memory-mapped, checked once per process), so it is cheap to copy into DataLoader
    workers and never keeps thousands of files open.
    """

    def __init__(
        self,
        directory: Path,
        key: dict,
        shapes: Sequence[Sequence[int]],
        checksums: Sequence[str],
    ) -> None:
        self.directory, self.dtype, self.digest = Path(directory), key["dtype"], key_digest(key)
        self.shapes = [tuple(int(v) for v in s) for s in shapes]
        self.checksums = list(checksums)

    @classmethod
    def open(cls, directory: str | Path, key: dict, dataset) -> TeacherOutputs | None:
        """The finished cache in ``directory`` made for ``key`` over ``dataset``; None when
        there is none (no manifest yet, or one made for another key: rebuild after ``prepare``).
        A finished cache that is malformed is a one-line ``ValueError``."""
        directory = Path(directory)
        manifest = _read_manifest(directory)
        if manifest is None or manifest.get("key") != key:
            return None
        shapes, checksums = _manifest_entries(dataset, directory, manifest)
        outputs = cls(directory, key, shapes, checksums)
        for index in range(len(shapes)):  # links and special files are refused at once
            path = entry_path(directory, index)
            if not path.is_symlink() and path.is_file():
                continue
            raise outputs.entry_error(path, "is missing, a symbolic link or not a regular file")
        return outputs

    def __len__(self) -> int:
        return len(self.shapes)

    def entry_error(self, path: Path, reason: str) -> ValueError:
        return ValueError(
            f"teacher-output cache entry {path} {reason}; delete {self.directory} to rebuild "
            f"the cache"
        )

    def crop(self, index: int, top: int, left: int, height: int, width: int) -> np.ndarray:
        """Rows ``top:top+height``, columns ``left:left+width`` of image ``index``'s output."""
        path = entry_path(self.directory, index)
        identity = entry_identity(self.digest, index)
        dtype = CACHE_DTYPES[self.dtype]
        try:
            array = read_entry(path, identity, self.shapes[index], dtype, self.checksums[index])
        except FileNotFoundError as err:
            raise self.entry_error(path, "is missing") from err
        except EntryError as err:
            raise self.entry_error(path, str(err)) from err
        return np.array(array[top : top + height, left : left + width])


def _refuse_irregular_manifest(manifest_path: Path) -> None:
    """A manifest that is a folder, a link or a special file was put there by someone, not by
    ``finish``: say so rather than empty the cache around it (or fail halfway through)."""
    try:
        stat_regular(manifest_path, follow_links=False)
    except NotRegularFileError:
        raise ValueError(
            f"teacher-output cache manifest {manifest_path} is not a regular file; remove it, "
            f"or delete the cache folder {manifest_path.parent}"
        ) from None


def prepare(directory: Path, key: dict) -> None:
    """Before a build (one process, before the others start): remove the temporary files a
    killed build left, and empty the folder when its manifest was made for another key or is
    not one ``finish`` wrote, so nothing in it is sealed again without being recomputed."""
    directory.mkdir(parents=True, exist_ok=True)
    for tmp in directory.glob(".*.tmp"):  # write_atomic's temporaries: .<name>.<hex>.tmp
        tmp.unlink(missing_ok=True)
    manifest_path = directory / MANIFEST
    if not manifest_path.exists() and not manifest_path.is_symlink():
        return  # an unfinished build: its entries that check out are reused
    _refuse_irregular_manifest(manifest_path)  # before anything is deleted
    manifest = _read_manifest(directory)
    if manifest is not None and manifest.get("key") == key:
        return
    for entry in directory.glob(ENTRY_GLOB):
        entry.unlink()
    manifest_path.unlink()


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


def missing_entries(dataset, directory: Path, key: dict, indices: Iterable[int]) -> list[int]:
    """Indices whose entry is absent or does not check out (a killed build's finished entries
    count as done; an entry made for another key or image does not)."""
    missing, digest = [], key_digest(key)
    for i in indices:
        try:
            _checked_entry(directory, digest, key["dtype"], i, expected_shape(dataset, i))
        except (FileNotFoundError, EntryError):
            missing.append(i)
    return missing


def build_entries(
    dataset,
    forward: Callable[[torch.Tensor], torch.Tensor],
    directory: Path,
    key: dict,
    indices: Sequence[int],
    batch_size: int = 4,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Compute and store the missing outputs among ``indices`` (this process's share); returns
    how many were computed. ``forward`` maps an LR batch (B, 3, h, w) on [0, 1] to its SR batch
    (tiling and device are its business)."""
    directory.mkdir(parents=True, exist_ok=True)
    dtype, digest = key["dtype"], key_digest(key)
    todo = missing_entries(dataset, directory, key, indices)
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
            write_entry(entry_path(directory, i), stored, entry_identity(digest, i), OPTION)
        if progress is not None:
            progress(len(group))
    return len(todo)


def finish(dataset, directory: Path, key: dict) -> TeacherOutputs:
    """Check every entry, then write the manifest (the mark of a finished cache) recording
    each entry's checksum and shape."""
    count = len(dataset.hr_files)
    missing = missing_entries(dataset, directory, key, range(count))
    if missing:
        raise RuntimeError(
            f"teacher-output cache {directory}: {len(missing)} entries missing after the build "
            f"(first: {entry_path(directory, missing[0]).name}); is the folder shared by all ranks?"
        )
    shapes = [list(expected_shape(dataset, i)) for i in range(count)]
    checksums = [entry_checksum(entry_path(directory, i)) for i in range(count)]
    manifest = {"key": key, "shapes": shapes, "sha256": checksums}
    write_atomic(directory / MANIFEST, lambda f: f.write(json.dumps(manifest).encode()), OPTION)
    return TeacherOutputs(directory, key, shapes, checksums)
