"""Training-data throughput: samples per second through the real training DataLoader.

Random aligned patches (as in training: batch 16, LR patch 48, x4, flips) from a folder of PNGs,
drawn by ``SRDataModule.train_dataloader`` (StatefulDataLoader, resumable sampler, persistent
workers) with 1 and 2 loader workers, for each way of reading the images:

- ``png``: every patch decodes its whole HR PNG and reads its LR from the LR cache
  (``lr_cache_dir``; uint8 ``.npy`` entries), the path of folder datasets without
  ``decoded_cache``;
- ``npy``: ``decoded_cache=true``, HR and LR as uint8 ``.npy`` files read memory-mapped;
- ``memory``: ``keep_in_memory=true``, decoded pairs kept per worker (small sets only);
- ``npy_teacher``: ``npy`` plus the teacher-output cache (float16 ``.npy``, memory-mapped): each
  patch also carries its crop of the teacher's output (``sr_t``), what ``teacher.cache=true``
  adds to the loader. The stored outputs are a nearest-neighbour upscale, not a network's: only
  the cost of serving them is measured.

Both caches are filled before anything is timed; each setting then runs one warm-up epoch (worker
start-up, per-worker memory cache) and a timed epoch, with the settings taken in turn ``--repeats``
times. The LR of a folder of HR images is generated with the MATLAB-compatible bicubic.

python benchmarks/data_throughput.py --root $S/data/benchmarks/Urban100/HR --images 20 --repeat 8 \\
    --workers 1 2 --modes png npy memory --repeats 3 --json data_throughput.json
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from srdistill.cli.arguments import OneLineErrorParser
from srdistill.data import teacher_cache, teacher_cache_key
from srdistill.data.datamodule import SRDataModule
from srdistill.data.images import list_images
from srdistill.data.paired import PairedImageDataset
from srdistill.outputs import write_json

MODES = {
    "png": {},
    "npy": {"decoded_cache": True},
    "memory": {"keep_in_memory": True},
    "npy_teacher": {"decoded_cache": True},
}


def link_images(root: Path, count: int | None, into: Path) -> Path:
    """The first ``count`` images of ``root`` as symbolic links in ``into`` (sources untouched)."""
    files = list_images(root)[:count]
    into.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(files):
        (into / f"{i:04d}_{path.name}").symlink_to(path.resolve())
    return into


def make_dataset(hr_root: Path, cache: Path, mode: str, args) -> PairedImageDataset:
    dataset = PairedImageDataset(
        hr_root,
        args.scale,
        args.patch,
        lr_cache_dir=cache,
        repeat=args.repeat,
        **MODES[mode],
    )
    if mode == "npy_teacher":
        dataset.attach_teacher_outputs(stand_in_teacher_outputs(dataset, cache / "teacher"))
    return dataset


def stand_in_teacher_outputs(dataset: PairedImageDataset, root: Path):
    """A float16 teacher-output cache of nearest-neighbour upscales (found when already built)."""
    key = teacher_cache_key.cache_key(
        dataset, {"stand_in": "nearest"}, dataset.scale, "float16", {}
    )
    directory = teacher_cache_key.cache_dir(root, key)
    found = teacher_cache.TeacherOutputs.open(directory, key, dataset)
    if found is not None:
        return found

    def upscale(lq: torch.Tensor) -> torch.Tensor:
        return F.interpolate(lq, scale_factor=dataset.scale, mode="nearest")

    indices = range(len(dataset.hr_files))
    teacher_cache.prepare(directory, key)
    teacher_cache.build_entries(dataset, upscale, directory, key, indices, batch_size=1)
    return teacher_cache.finish(dataset, directory, key)


def fill_cache(dataset: PairedImageDataset) -> None:
    """Make every cache file a timed run would otherwise make on its first epoch."""
    for index in range(len(dataset.hr_files)):
        dataset.load_pair(index)


def epoch_seconds(loader) -> tuple[float, int]:
    start, samples = time.perf_counter(), 0
    for batch in loader:
        samples += batch["lq"].shape[0]
    return time.perf_counter() - start, samples


def measure(dataset: PairedImageDataset, workers: int, batch: int) -> float:
    """Samples per second over one epoch after a warm-up epoch, same loader and workers."""
    module = SRDataModule(dataset, dataset.scale, batch_size=batch, num_workers=workers)
    loader = module.train_dataloader()
    epoch_seconds(loader)
    seconds, samples = epoch_seconds(loader)
    del loader  # persistent workers end with their loader
    return samples / seconds


def summarize(rates: list[float], workers: int) -> dict:
    median = statistics.median(rates)
    return {
        "samples_per_s": round(median, 1),
        "samples_per_s_min": round(min(rates), 1),
        "samples_per_s_max": round(max(rates), 1),
        "samples_per_s_per_worker": round(median / workers, 1),
        "runs": [round(r, 1) for r in rates],
    }


def main() -> None:
    parser = OneLineErrorParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="folder of HR images (PNG)")
    parser.add_argument("--images", type=int, default=None, help="use the first N images")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--patch", type=int, default=48, help="LR patch size")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=8, help="patches per image per epoch")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=list(MODES))
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per setting")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, main process")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    if not Path(args.root).is_dir():
        parser.error(f"--root: no folder {args.root}")
    if min(args.scale, args.patch, args.batch, args.repeat, args.repeats) < 1:
        parser.error("--scale, --patch, --batch, --repeat and --repeats must be positive")
    if min(args.workers) < 1:
        parser.error("--workers: loader workers must be 1 or more")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        hr_root = link_images(Path(args.root), args.images, Path(tmp) / "hr")
        cache = Path(tmp) / "cache"
        for mode in args.modes:  # in instances of their own: workers must not inherit pairs
            fill_cache(make_dataset(hr_root, cache, mode, args))
        datasets = {mode: make_dataset(hr_root, cache, mode, args) for mode in args.modes}
        rates: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.repeats):
            for mode, dataset in datasets.items():
                for workers in args.workers:
                    rate = measure(dataset, workers, args.batch)
                    rates.setdefault((mode, workers), []).append(rate)
        first = next(iter(datasets.values()))
        result = {
            "images": len(first.hr_files),
            "samples_per_epoch": len(first),
            "batch": args.batch,
            "lr_patch": args.patch,
            "scale": args.scale,
            "threads": args.threads,
            "settings": [
                {"mode": mode, "workers": workers, **summarize(values, workers)}
                for (mode, workers), values in rates.items()
            ],
        }
    print(f"{'mode':<8}{'workers':>8}{'samples/s':>11}{'min':>8}{'max':>8}{'per worker':>12}")
    for row in result["settings"]:
        print(
            f"{row['mode']:<8}{row['workers']:>8}{row['samples_per_s']:>11.1f}"
            f"{row['samples_per_s_min']:>8.1f}{row['samples_per_s_max']:>8.1f}"
            f"{row['samples_per_s_per_worker']:>12.1f}"
        )
    if args.json:
        write_json(args.json, result, "--json")


if __name__ == "__main__":
    main()
