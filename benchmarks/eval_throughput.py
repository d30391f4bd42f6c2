"""Evaluation throughput: images per second and peak memory on a benchmark set (Urban100 x4).

Runs the real evaluation loop (``srdistill.eval.benchmark.evaluate_set``: read the HR PNG, make
its LR with the MATLAB-compatible bicubic, super-resolve, quantise, PSNR/SSIM) for each setting
of whole image vs tiled and float32 vs bf16 autocast, each in a freshly spawned process so that
peak resident memory belongs to that setting alone. The loop's time is split into reading the
pair (PNG decode + LR generation), the network's forward, and the rest (quantisation, metrics).
bf16 runs the network under ``torch.autocast``; on a CPU without native bf16 instructions it is
emulated and slow, which the numbers show.

python benchmarks/eval_throughput.py --root $S/data/benchmarks \\
    --ckpt $S/weights/span_tiny_ch26_x4.pth --tiles none 128 --dtypes float32 bfloat16 \\
    --json eval_throughput.json
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import time
from pathlib import Path

from srdistill.cli.arguments import OneLineErrorParser
from srdistill.outputs import write_json

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024.0


def _build_model(name: str, ckpt: str | None):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from srdistill.models.checkpoint import load_weights

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="efficiency", overrides=[f"model={name}"])
    model = instantiate(cfg.model)
    return (load_weights(model, ckpt, name) if ckpt else model).eval()


def _measure(job: dict, queue) -> None:
    import torch
    from torch import nn

    from srdistill.data.benchmark_sets import BenchmarkDataset
    from srdistill.eval.benchmark import evaluate_set

    torch.set_num_threads(job["threads"])
    dtype = getattr(torch, job["dtype"])
    device = torch.device(job["device"])

    class TimedDataset(BenchmarkDataset):
        seconds = 0.0

        def __getitem__(self, index: int) -> dict:
            start = time.perf_counter()
            item = super().__getitem__(index)
            TimedDataset.seconds += time.perf_counter() - start
            return item

    class TimedForward(nn.Module):
        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model, self.seconds = model, 0.0

        def forward(self, lq: torch.Tensor) -> torch.Tensor:
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                sr = self.model(lq)
            sr = sr.float()
            if device.type == "cuda":
                torch.cuda.synchronize()
            self.seconds += time.perf_counter() - start
            return sr

    torch.manual_seed(0)  # without --ckpt, the same random network in every setting
    model = TimedForward(_build_model(job["model"], job["ckpt"]).to(device))
    dataset = TimedDataset(job["root"], job["set"], job["scale"], gt_uint8=True)
    dataset.hr_files = dataset.hr_files[: job["limit"]]
    base = _rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    metrics = evaluate_set(model, dataset, device, tile=job["tile"], tile_overlap=job["overlap"])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result = {
        "tile": job["tile"],
        "dtype": job["dtype"],
        "images": len(dataset),
        "seconds": round(seconds, 3),
        "images_per_s": round(len(dataset) / seconds, 3),
        "read_pair_s": round(TimedDataset.seconds, 2),
        "forward_s": round(model.seconds, 2),
        "metrics_and_rest_s": round(seconds - TimedDataset.seconds - model.seconds, 2),
        "peak_rss_mb": round(peak, 1),
        "peak_growth_mb": round(peak - base, 1),
        "psnr_y": metrics["psnr"],
        "ssim_y": metrics["ssim"],
    }
    if device.type == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    queue.put(result)


def _tile(value: str) -> int | None:
    return None if value.lower() in ("none", "null", "whole") else int(value)


def main() -> None:
    parser = OneLineErrorParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="folder with <set>/HR")
    parser.add_argument("--set", default="Urban100")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--model", default="span_ch26")
    parser.add_argument("--ckpt", default=None, help="weights (default: random initialisation)")
    parser.add_argument("--limit", type=int, default=None, help="use the first N images")
    parser.add_argument("--tiles", type=_tile, nargs="+", default=[None, 128], help="none = whole")
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "bfloat16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    dtypes = args.dtypes or ["float32", "bfloat16"]
    if not (Path(args.root) / args.set / "HR").is_dir():
        parser.error(f"--root: no folder {Path(args.root) / args.set / 'HR'}")
    ctx = mp.get_context("spawn")
    rows = []
    for dtype in dtypes:
        for tile in args.tiles:
            queue = ctx.Queue()
            job = {**vars(args), "tile": tile, "dtype": dtype}
            proc = ctx.Process(target=_measure, args=(job, queue))
            proc.start()
            proc.join()
            failed = {"tile": tile, "dtype": dtype, "failed": proc.exitcode}
            rows.append(queue.get() if proc.exitcode == 0 else failed)
            print(json.dumps(rows[-1]), flush=True)
    result = {
        "set": args.set,
        "scale": args.scale,
        "model": args.model,
        "ckpt": args.ckpt,
        "device": args.device,
        "threads": args.threads,
        "settings": rows,
    }
    if args.json:
        write_json(args.json, result, "--json")


if __name__ == "__main__":
    main()
