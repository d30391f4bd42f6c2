"""Building (or finding) the teacher-output cache when training starts, on every DDP rank.

``train.py`` adds this callback when ``teacher.cache=true`` and the loss reads nothing of the
teacher but its output. At the start of each fit, before the training loader exists, every part
of the training set gets its cache: found finished for the same key, or built with each rank
computing every ``world_size``-th image, then checked and sealed by rank 0 with its manifest.
The module then takes the teacher's output from the batch (``sr_t``) instead of running it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from lightning import Callback
from tqdm import tqdm

from srdistill.data import teacher_cache, teacher_cache_key
from srdistill.data.paired import PairedConcatDataset, PairedImageDataset
from srdistill.eval.tiling import tiled_forward
from srdistill.outputs import ensure_writable_dir

log = logging.getLogger(__name__)


def paired_parts(dataset) -> list[PairedImageDataset]:
    """The folder datasets a training set is made of (DF2K: DIV2K and Flickr2K)."""
    if isinstance(dataset, PairedImageDataset):
        return [dataset]
    if isinstance(dataset, PairedConcatDataset):
        return [part for d in dataset.datasets for part in paired_parts(d)]
    raise ValueError(
        f"teacher.cache serves PairedImageDataset training sets, not {type(dataset).__name__}; "
        "set teacher.cache=false"
    )


class TeacherOutputCache(Callback):
    """``dir``: where caches live (one folder per key); ``dtype``: float32, float16 or uint8;
    ``tile``/``tile_overlap``: LR tile size (None: whole images) for the teacher's pass;
    ``batch_size``: images of one size per teacher forward."""

    def __init__(
        self,
        dir: str,
        dtype: str = "float16",
        tile: int | None = 512,
        tile_overlap: int = 48,
        batch_size: int = 4,
        compute: dict | None = None,
    ) -> None:
        teacher_cache_key.check_cache_options(dtype, tile, tile_overlap, batch_size)
        # here, when train.py builds its callbacks: a bad folder is named before the model exists
        self.root = ensure_writable_dir(dir, teacher_cache.OPTION)
        self.dtype = dtype
        self.tile, self.overlap, self.batch_size = tile, tile_overlap, batch_size
        self.compute = {"tile": tile, "tile_overlap": tile_overlap, **(compute or {})}

    def teacher_identity(self, pl_module) -> dict:
        identity = dict(pl_module.teacher_identity)
        return {
            "arch": identity.get("arch"),
            "checkpoint_sha256": identity.get("sha256"),
            "weights_sha256": teacher_cache_key.weights_sha256(pl_module.teacher),
        }

    def on_fit_start(self, trainer, pl_module) -> None:
        if pl_module.teacher is None or not pl_module.loss.reads_teacher_outputs_only:
            return
        teacher = self.teacher_identity(pl_module)
        for part in paired_parts(trainer.datamodule.train_dataset):
            key = teacher_cache_key.cache_key(part, teacher, part.scale, self.dtype, self.compute)
            part.attach_teacher_outputs(self._outputs(trainer, pl_module, part, key))

    def _outputs(self, trainer, pl_module, part, key) -> teacher_cache.TeacherOutputs:
        directory = teacher_cache_key.cache_dir(self.root, key)
        found = teacher_cache.TeacherOutputs.open(directory, key, part)
        if found is not None:
            log.info("teacher-output cache: %d images from %s", len(found), directory)
            return found
        start = time.perf_counter()
        if trainer.is_global_zero:  # before any rank writes: a killed build's leftovers go
            teacher_cache.prepare(directory, key)
        trainer.strategy.barrier("teacher_cache_prepared")
        self._build_share(trainer, pl_module, part, directory, key)
        trainer.strategy.barrier("teacher_cache_built")
        if trainer.is_global_zero:
            teacher_cache.finish(part, directory, key)
        trainer.strategy.barrier("teacher_cache_sealed")
        outputs = teacher_cache.TeacherOutputs.open(directory, key, part)
        if outputs is None:
            raise RuntimeError(f"teacher-output cache {directory} was not sealed by rank 0")
        log.info(
            "teacher-output cache: built %d images in %.1f s at %s",
            len(outputs),
            time.perf_counter() - start,
            directory,
        )
        return outputs

    def _build_share(self, trainer, pl_module, part, directory: Path, key: dict) -> None:
        """This rank's images (every world_size-th), batched by size, tiled when large."""
        device = pl_module.device
        share = range(trainer.global_rank, len(part.hr_files), trainer.world_size)

        def forward(lq: torch.Tensor) -> torch.Tensor:
            run = lambda x: pl_module.teacher_forward(x)[0]  # noqa: E731
            return tiled_forward(run, lq.to(device), part.scale, self.tile, self.overlap)

        with tqdm(
            total=len(share),
            desc="teacher-output cache",
            unit="img",
            disable=not trainer.is_global_zero,
        ) as bar:
            teacher_cache.build_entries(
                part, forward, directory, key, share, self.batch_size, bar.update
            )
