"""How much does the cached target differ from the online one, and where?

The teacher-output cache serves the crop of the teacher's output on the *full* image; the online
teacher sees only the LR patch, so near the patch border its receptive field runs into zero
padding. This measures the difference between the two targets on random training crops, by
distance (in LR pixels) from the patch border, and how close each target is to the ground truth.

python benchmarks/teacher_cache_border.py --model span_ch28 \\
    --ckpt ../shared/weights/span_ch28_x4.pth --data ../shared/data/train/Sun80 --patch 48
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from srdistill.cli.arguments import OneLineErrorParser
from srdistill.data.images import to_tensor
from srdistill.data.paired import PairedImageDataset, random_crop_origin
from srdistill.data.samples import TRAIN_SET, materialize_samples
from srdistill.eval.tiling import tiled_forward
from srdistill.models.checkpoint import load_weights
from srdistill.outputs import write_json

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def load_teacher(name: str, ckpt: str | None, scale: int) -> torch.nn.Module:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="efficiency", overrides=[f"model={name}", f"scale={scale}"])
    model = instantiate(cfg.model)
    return (load_weights(model, ckpt, name) if ckpt else model).eval()


def border_distance(size: int, scale: int) -> np.ndarray:
    """Each HR pixel's distance from the nearest patch edge, in whole LR pixels."""
    ramp = np.minimum(np.arange(size), np.arange(size)[::-1]) // scale
    return np.minimum(ramp[:, None], ramp[None, :])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    return 10 * math.log10(1 / mse) if mse > 0 else float("inf")


@torch.no_grad()
def measure(teacher, dataset, patch: int, crops: int, seed: int, rings: int, tile) -> dict:
    scale, generator = dataset.scale, torch.Generator().manual_seed(seed)
    dist = border_distance(patch * scale, scale)
    sums, counts = np.zeros(rings + 1), np.zeros(rings + 1)
    changed, psnr_online, psnr_cached, psnr_between = [], [], [], []
    outputs = {}
    for _ in range(crops):
        index = int(torch.randint(len(dataset.hr_files), (1,), generator=generator))
        lr, hr = dataset.load_pair(index)
        if index not in outputs:
            full = tiled_forward(teacher, to_tensor(lr)[None], scale, tile, 48)[0]
            outputs[index] = full.permute(1, 2, 0).numpy()
        top, left = random_crop_origin(lr.shape, patch, generator)
        window = (
            slice(top * scale, (top + patch) * scale),
            slice(left * scale, (left + patch) * scale),
        )
        lq = to_tensor(lr[top : top + patch, left : left + patch])[None]
        online = teacher(lq)[0].permute(1, 2, 0).numpy()
        cached, gt = outputs[index][window], hr[window].astype(np.float64) / 255
        diff = np.abs(online - cached).mean(axis=2) * 255
        for ring in range(rings + 1):
            mask = dist == ring if ring < rings else dist >= rings
            sums[ring] += diff[mask].sum()
            counts[ring] += mask.sum()
        changed.append(float((diff > 0.5).mean()))
        psnr_online.append(psnr(online, gt))
        psnr_cached.append(psnr(cached, gt))
        psnr_between.append(psnr(online, cached))
    return {
        "mean_abs_diff_255_by_ring": [round(float(v), 4) for v in sums / counts],
        "rings": [str(r) for r in range(rings)] + [f">={rings}"],
        "share_of_pixels_off_by_over_half_a_level": round(float(np.mean(changed)), 4),
        "psnr_online_vs_cached": round(float(np.mean(psnr_between)), 2),
        "psnr_online_target_vs_gt": round(float(np.mean(psnr_online)), 3),
        "psnr_cached_target_vs_gt": round(float(np.mean(psnr_cached)), 3),
    }


def main() -> None:
    parser = OneLineErrorParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sample_teacher", help="a conf/model name")
    parser.add_argument(
        "--ckpt", default=None, help="teacher weights (the sample teacher has its own)"
    )
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--data", default=None, help="HR folder (default: the embedded samples)")
    parser.add_argument("--patch", type=int, nargs="+", default=[24, 48], help="LR patch sizes")
    parser.add_argument("--crops", type=int, default=64)
    parser.add_argument("--rings", type=int, default=8, help="border rings reported one by one")
    parser.add_argument("--tile", type=int, default=None, help="LR tile for the full image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.data is not None and not Path(args.data).is_dir():
        parser.error(f"--data: no folder {args.data}")
    if args.ckpt is not None and not Path(args.ckpt).is_file():
        parser.error(f"--ckpt: no file {args.ckpt}")
    if min(args.scale, args.crops, args.rings, *args.patch) < 1:
        parser.error("--scale, --crops, --rings and --patch must be positive")
    data = args.data or materialize_samples() / TRAIN_SET / "HR"
    teacher = load_teacher(args.model, args.ckpt, args.scale)
    result = {"model": args.model, "ckpt": args.ckpt, "data": str(data), "scale": args.scale}
    for patch in args.patch:
        dataset = PairedImageDataset(data, args.scale, patch, keep_in_memory=True)
        result[f"patch{patch}"] = measure(
            teacher, dataset, patch, args.crops, args.seed, args.rings, args.tile
        )
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, result, "--json")


if __name__ == "__main__":
    main()
