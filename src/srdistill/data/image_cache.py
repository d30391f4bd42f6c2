"""The caches of a training set's images, keyed by the content of their source files.

LR images made from the mod-cropped HR with the MATLAB-compatible bicubic are cached (on disk
under ``lr_cache_dir`` when set, else in memory per worker). With ``decoded_cache`` the decoded
images (HR, LR files and generated LR) are kept under ``lr_cache_dir`` as uint8 ``.npy`` entries
read memory-mapped, so a patch costs reading its rows instead of decoding a whole PNG. Every cache
entry is named after the SHA-256 of its source file, hashed once when the dataset is built, and
checked when read (``srdistill.data.decoded_cache``): an entry that does not check out is made
again. With a cache, a source is decoded from the very bytes that were hashed again when read: a
file changed since the dataset was built is refused (restart the run), never cached under the key
of the content it replaced. Entry names hold the digest and at most ``NAME_BYTES`` bytes of the
source's name, so a long file name never makes a name too long for the file system.

Under ``lr_cache_dir``, each HR folder has its own folder (named after a hash of its path) holding
``X<scale>/<subfolder>/<name>.<digest>.x<scale>.{lr,hr}.npy``; each LR folder likewise holds
``decoded/<subfolder>/<name>.<digest>.decoded.npy``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from srdistill.checksums import file_sha256
from srdistill.data.decoded_cache import image_size, read_decoded, write_decoded
from srdistill.data.images import mod_crop, read_rgb
from srdistill.data.matlab_bicubic import imresize

NAME_BYTES = 48  # of a source's name kept in its entries' names, for whoever lists the cache


def _short_name(name: str) -> str:
    """At most ``NAME_BYTES`` bytes of ``name`` (UTF-8, never a cut character): entry names stay
    far below the file system's 255 bytes, temporaries included, whatever the image's name."""
    return name.encode()[:NAME_BYTES].decode(errors="ignore")


def _folder_key(root: Path) -> str:
    """The name of a source folder's own folder in the cache: training sets never share one."""
    return hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]


class TrainingImageCache:
    """The decoded images and generated LR of one training set (``hr_root``, and ``lr_root``
    when its LR come from files) at one ``scale``: on disk under ``lr_cache_dir`` (decoded
    images too when ``decoded``), or, without one, generated LR only and in memory."""

    def __init__(
        self,
        hr_root: Path,
        lr_root: Path | None,
        scale: int,
        lr_cache_dir: str | Path | None,
        decoded: bool,
    ) -> None:
        self.hr_root, self.lr_root, self.scale, self.decoded = hr_root, lr_root, scale, decoded
        self.root = Path(lr_cache_dir) if lr_cache_dir is not None else None
        self.directory = None  # where the entries made from the HR images go
        if self.root is not None:
            self.directory = self.root / _folder_key(hr_root) / f"X{scale}"
        self._digests: dict[Path, str] = {}
        self._generated: dict[Path, np.ndarray] = {}  # generated LR, when not on disk

    def source_digest(self, path: Path) -> str:
        """SHA-256 of a training file's bytes, the key of every cache entry made from it;
        read once per process (``hash_sources`` reads them all when the dataset is built)."""
        digest = self._digests.get(path)
        if digest is None:
            digest = self._digests[path] = file_sha256(path)
        return digest

    def hash_sources(self, paths: Iterable[Path]) -> None:
        """Hash every source now, so loader workers inherit the digests."""
        for path in paths:
            self.source_digest(path)

    def entry_path(self, hr_path: Path, kind: str) -> Path:
        """Where the ``kind`` entry (``lr``: generated LR, ``hr``: decoded HR) of an HR image
        is: named after its content digest, so a replaced image never meets the old one's."""
        if self.directory is None:
            raise ValueError("this dataset has no lr_cache_dir")
        relative = hr_path.relative_to(self.hr_root)
        # the content digest keeps a.png and a.jpg apart, and a replaced image apart from the one
        # it replaced, whatever its size and mtime; the name is only for people reading the folder
        digest = self.source_digest(hr_path)[:32]
        name = f"{_short_name(relative.name)}.{digest}.x{self.scale}.{kind}.npy"
        return self.directory / relative.parent / name

    def _lr_file_entry_path(self, lr_path: Path) -> Path:
        """Where a file of the LR folder is cached decoded: keyed by that folder, name and
        content digest, as the HR images are."""
        assert self.root is not None and self.lr_root is not None
        relative = lr_path.relative_to(self.lr_root)
        name = f"{_short_name(relative.name)}.{self.source_digest(lr_path)[:32]}.decoded.npy"
        return self.root / _folder_key(self.lr_root) / "decoded" / relative.parent / name

    def read_hr(self, hr_path: Path) -> np.ndarray:
        """The HR image mod-cropped to the scale, through the decoded cache when kept."""
        if self.decoded:
            return self._decoded(hr_path, self.entry_path(hr_path, "hr"), self.scale)
        return mod_crop(self._decode(hr_path), self.scale)

    def read_lr_file(self, lr_path: Path) -> np.ndarray:
        """A file of the LR folder, through the decoded cache when kept."""
        if self.decoded:
            return self._decoded(lr_path, self._lr_file_entry_path(lr_path), 1)
        return self._decode(lr_path)

    def generated_lr(self, hr_path: Path, hr: np.ndarray) -> tuple[np.ndarray, Path | None]:
        """The LR made from ``hr`` (the image at ``hr_path``) and the cache file it was read
        from or written to (None: kept in memory)."""
        if self.directory is None:
            if hr_path not in self._generated:
                self._generated[hr_path] = imresize(hr, scale=1.0 / self.scale)
            return self._generated[hr_path], None
        entry = self.entry_path(hr_path, "lr")
        identity = f"bicubic-lr:{self.source_digest(hr_path)}:x{self.scale}"
        shape = (hr.shape[0] // self.scale, hr.shape[1] // self.scale, 3)
        lr = read_decoded(entry, identity, shape)
        if lr is None:
            lr = imresize(np.asarray(hr), scale=1.0 / self.scale)
            write_decoded(entry, lr, identity)
        # without decoded_cache the LR is read whole, as the decoded HR is
        return (lr if self.decoded else np.array(lr)), entry

    def _decoded(self, source: Path, entry: Path, crop: int) -> np.ndarray:
        """``source`` decoded and mod-cropped to ``crop``: from ``entry`` when it holds that
        image of the size the source's header gives, else decoded and written there."""
        identity = f"decoded:{self.source_digest(source)}:mod{crop}"
        size = image_size(source)
        if size is not None:
            shape = (size[0] - size[0] % crop, size[1] - size[1] % crop, 3)
            cached = read_decoded(entry, identity, shape)
            if cached is not None:
                return cached
        image = mod_crop(self._decode(source), crop)
        write_decoded(entry, image, identity)
        return image

    def _decode(self, source: Path) -> np.ndarray:
        """``source`` decoded; with a cache, from the bytes just hashed, refused when they are
        not the content its cache entries are keyed by (the file changed during the run)."""
        if self.directory is None:
            return read_rgb(source)[0]
        data = source.read_bytes()
        if hashlib.sha256(data).hexdigest() != self.source_digest(source):
            raise ValueError(
                f"training image {source} changed since the dataset was built; restart the run"
            )
        return read_rgb(source, data)[0]
