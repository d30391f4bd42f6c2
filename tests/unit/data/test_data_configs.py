"""Every ``conf/data/*.yaml`` composes with Hydra and instantiates on a fake tree in its layout.

How the configs are composed: the entry-point configs hold their own ``data`` node, so instead a
throw-away config dir is made per test with ``root.yaml`` (``defaults: [{data: folder}, _self_]``
and ``scale: 2``) and a symlink ``data -> conf/data``. Composing ``root`` with ``data=<name>``
then resolves each yaml's own ``defaults`` (div2k -> folder, ...) exactly as an entry point would.

Each fake tree follows the comment at the top of its yaml: two or more 40x40 HR PNGs at scale 2.
Where the layout has LR files they hold nearest-neighbour downscales, written so that
HR = kron(LR), which makes any aligned patch satisfy gt == kron(lq).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue
from torch.utils.data import ConcatDataset

from srdistill.data.images import to_uint8_image
from srdistill.data.matlab_bicubic import imresize
from srdistill.data.paired import PairedImageDataset
from srdistill.data.samples import TRAIN_PHOTOS, TRAIN_SET
from tests.helpers.images import write_png

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"
SCALE, PATCH = 2, 8


def kron(image: np.ndarray) -> np.ndarray:
    return np.kron(image, np.ones((SCALE, SCALE, 1), dtype=np.uint8))


def write_hr(path: Path, seed: int, lr_path: Path | None = None) -> None:
    lr = np.random.default_rng(seed).integers(0, 256, size=(20, 20, 3), dtype=np.uint8)
    write_png(path, kron(lr))
    if lr_path is not None:
        write_png(lr_path, lr)


def layout_folder(root: Path) -> int:
    write_hr(root / "0001.png", 1)
    write_hr(root / "sub" / "0002.png", 2)  # searched recursively
    return 2


def layout_div2k(root: Path) -> int:
    for i in (1, 2):
        write_hr(
            root / "DIV2K_train_HR" / f"{i:04d}.png",
            i,
            root / "DIV2K_train_LR_bicubic" / "X2" / f"{i:04d}x2.png",
        )
    return 2


def layout_flickr2k(root: Path) -> int:
    for i in (1, 2):
        write_hr(
            root / "Flickr2K_HR" / f"{i:06d}.png",
            10 + i,
            root / "Flickr2K_LR_bicubic" / "X2" / f"{i:06d}x2.png",
        )
    return 2


def layout_df2k(root: Path) -> int:
    return layout_div2k(root) + layout_flickr2k(root)


def layout_lsdir(root: Path) -> int:
    write_hr(root / "HR" / "train" / "0001000" / "0000001.png", 21)
    write_hr(root / "HR" / "train" / "0001000" / "0000002.png", 22)
    write_hr(root / "HR" / "train" / "0002000" / "0001001.png", 23)
    return 3


LAYOUTS = {
    "folder": layout_folder,
    "div2k": layout_div2k,
    "flickr2k": layout_flickr2k,
    "df2k": layout_df2k,
    "lsdir": layout_lsdir,
}
# the HR folders each config reads, relative to data.root
HR_ROOTS = {
    "folder": ["."],
    "div2k": ["DIV2K_train_HR"],
    "flickr2k": ["Flickr2K_HR"],
    "df2k": ["DIV2K_train_HR", "Flickr2K_HR"],
    "lsdir": ["HR/train"],
}
# LR files read from disk (others generate and cache the LR)
WITH_LR_FILES = {"div2k", "flickr2k", "df2k"}


def compose_data(tmp_path: Path, name: str, overrides: list[str]):
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "root.yaml").write_text("defaults:\n  - data: folder\n  - _self_\nscale: 2\n")
    (config_dir / "data").symlink_to(CONF_DIR / "data", target_is_directory=True)
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name="root", overrides=[f"data={name}", *overrides])


def parts(dataset) -> list[PairedImageDataset]:
    return list(dataset.datasets) if isinstance(dataset, ConcatDataset) else [dataset]


def test_every_data_config_is_covered():
    names = {p.stem for p in (CONF_DIR / "data").glob("*.yaml")}
    assert names == set(LAYOUTS) | {"samples"}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_config_instantiates_on_its_layout(tmp_path, name):
    root = tmp_path / "data"
    n_images = LAYOUTS[name](root)
    cfg = compose_data(tmp_path, name, [f"data.root='{root}'", f"data.lr_patch_size={PATCH}"])
    dataset = instantiate(cfg.data.train)

    assert len(dataset) == n_images
    assert [p.hr_root for p in parts(dataset)] == [root / r for r in HR_ROOTS[name]]
    for part in parts(dataset):
        assert isinstance(part, PairedImageDataset)
        assert part.scale == SCALE and part.patch == PATCH
        assert (part.lr_files is not None) == (name in WITH_LR_FILES)

    for index in range(len(dataset)):
        item = dataset[index]
        assert item["lq"].shape == (3, PATCH, PATCH)
        assert item["gt"].shape == (3, PATCH * SCALE, PATCH * SCALE)
        if name in WITH_LR_FILES:  # the LR files were found and paired with the right HR
            lq, gt = to_uint8_image(item["lq"]), to_uint8_image(item["gt"])
            np.testing.assert_array_equal(gt, kron(lq))

    if name not in WITH_LR_FILES:
        part = parts(dataset)[0]
        lr, hr = part.load_pair(0)
        np.testing.assert_array_equal(lr, imresize(hr, scale=1 / SCALE))
        # generated LR is cached on disk below $SRDISTILL_CACHE/lr (set by conftest)
        assert part.cache_dir is not None
        cache = Path(OmegaConf.to_container(cfg, resolve=True)["data"]["lr_cache_dir"])
        assert cache.parent == Path(os.environ["SRDISTILL_CACHE"])
        assert part.cache_dir.is_relative_to(cache)
        # decoded_cache (on in every folder config): the LR and the HR as .npy, no PNG
        assert part.decoded_cache
        assert any(part.cache_dir.rglob("*x2.lr.npy")) and any(part.cache_dir.rglob("*x2.hr.npy"))
        assert not any(part.cache_dir.rglob("*.png"))


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_root_is_mandatory(tmp_path, name):
    cfg = compose_data(tmp_path, name, [])
    with pytest.raises(MissingMandatoryValue):
        instantiate(cfg.data.train)


def test_samples_config_needs_no_root(tmp_path):
    cfg = compose_data(tmp_path, "samples", [f"data.lr_patch_size={PATCH}"])
    assert cfg.data.root is None
    dataset = instantiate(cfg.data.train)
    assert isinstance(dataset, PairedImageDataset)
    assert len(dataset) == len(TRAIN_PHOTOS) * cfg.data.train.repeat
    # written below $SRDISTILL_CACHE (set by conftest), not the user's cache
    assert dataset.hr_root == Path(os.environ["SRDISTILL_CACHE"]) / "samples" / TRAIN_SET / "HR"
    item = dataset[0]
    assert item["lq"].shape == (3, PATCH, PATCH)
    assert item["gt"].shape == (3, PATCH * SCALE, PATCH * SCALE)
