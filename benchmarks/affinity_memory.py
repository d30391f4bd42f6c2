"""Peak memory of the spatial-affinity loss (forward + backward) against its row-block size.

Each setting runs in a fresh process and reports its peak resident memory minus the resident
memory before the loss, so the numbers compare the loss alone. chunk_rows >= H*W is the naive
full-matrix computation.

python benchmarks/affinity_memory.py --batch 8 --channels 26 28 --hw 64 64 --layers 6 \\
    --chunk-rows 4096 1024 256
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024.0


def _measure(args: dict, queue) -> None:
    import torch

    from srdistill.losses.affinity import affinity_l1

    torch.set_num_threads(args["threads"])
    n, (cs, ct), (h, w) = args["batch"], args["channels"], args["hw"]
    feats_s = [torch.randn(n, cs, h, w, requires_grad=True) for _ in range(args["layers"])]
    feats_t = [torch.randn(n, ct, h, w) for _ in range(args["layers"])]
    base = _rss_mb()
    start = time.perf_counter()
    loss = sum(affinity_l1(s, t, args["chunk_rows"]) for s, t in zip(feats_s, feats_t, strict=True))
    loss.backward()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    queue.put(
        {
            "chunk_rows": args["chunk_rows"],
            "peak_growth_mb": round(peak - base, 1),
            "seconds": round(seconds, 2),
            "loss": float(loss.detach()),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, nargs=2, default=[26, 28])
    parser.add_argument("--hw", type=int, nargs=2, default=[64, 64])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--chunk-rows", type=int, nargs="+", default=[4096, 1024, 256])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    for chunk_rows in args.chunk_rows:
        queue = ctx.Queue()
        job = {**vars(args), "chunk_rows": chunk_rows}
        proc = ctx.Process(target=_measure, args=(job, queue))
        proc.start()
        proc.join()
        print(
            json.dumps(
                queue.get()
                if proc.exitcode == 0
                else {"chunk_rows": chunk_rows, "failed": proc.exitcode}
            )
        )


if __name__ == "__main__":
    main()
