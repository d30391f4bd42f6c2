"""What a model costs: parameters, multiply-accumulates, latency and peak memory.

Counting conventions (both at an LR input of 3x256x256 unless told otherwise):

- ``macs``: multiply-accumulate operations, convolutions, linear layers and attention matrix
  products included. This is what MCAD-KD's Tab. 2 and the NTIRE efficient-SR reports call
  "FLOPs" (fvcore counts one per multiply-accumulate).
- ``flops``: floating-point operations as ``torch.utils.flop_counter`` counts them, 2 per MAC.

Counting runs on the meta device, so even a 43 M-parameter teacher at 256x256 costs no compute.
Peak memory is CUDA's allocator peak on GPU; on CPU it is the growth of the resident set during one
single-threaded forward after a warm-up, read in a freshly spawned process so that nothing else
the caller allocated hides it (Linux only).
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import os
import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

log = logging.getLogger(__name__)


@dataclass
class EfficiencyReport:
    params: int
    macs_g: float
    flops_g: float
    input_hw: tuple[int, int]
    latency_ms: float | None = None
    latency_hw: tuple[int, int] | None = None
    peak_memory_mb: float | None = None
    device: str = "cpu"

    def as_dict(self) -> dict:
        return asdict(self)


def count_parameters(model: nn.Module) -> int:
    """Learnable parameters (buffers such as SwinIR's index tables and masks excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_hw: tuple[int, int] = (256, 256), in_chans: int = 3) -> int:
    """``torch.utils.flop_counter`` FLOPs of one forward at (1, in_chans, *input_hw), on meta."""
    meta_model = copy.deepcopy(model).to("meta").eval()
    x = torch.empty(1, in_chans, *input_hw, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta_model(x)
    return counter.get_total_flops()


@torch.inference_mode()
def measure_latency(
    model: nn.Module,
    input_hw: tuple[int, int],
    device: str = "cpu",
    warmup: int = 2,
    repeats: int = 10,
) -> float:
    """Median wall time (ms) of one forward at (1, 3, *input_hw) on ``device``."""
    model = model.to(device).eval()
    x = torch.rand(1, 3, *input_hw, generator=torch.Generator().manual_seed(0)).to(device)
    times = []
    for i in range(warmup + repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def _forward_ms(model: nn.Module, x: torch.Tensor) -> float:
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    model(x)
    if x.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000.0


@torch.inference_mode()
def latency_ratio(
    reference: nn.Module,
    candidate: nn.Module,
    input_hw: tuple[int, int],
    calls: int = 100,
    warmup: int = 3,
    device: str = "cpu",
) -> dict:
    """``candidate`` / ``reference`` median forward time, measured call by call in alternation
    (the order flips every call) in one process, so drift in clock speed or machine load hits
    both alike."""
    models = [reference.to(device).eval(), candidate.to(device).eval()]
    x = torch.rand(1, 3, *input_hw, generator=torch.Generator().manual_seed(0)).to(device)
    for _ in range(warmup):
        for model in models:
            model(x)
    times: list[list[float]] = [[], []]
    for i in range(calls):
        for j in (0, 1) if i % 2 == 0 else (1, 0):
            times[j].append(_forward_ms(models[j], x))
    ref_ms, cand_ms = statistics.median(times[0]), statistics.median(times[1])
    return {
        "ratio": cand_ms / ref_ms,
        "reference_ms": ref_ms,
        "candidate_ms": cand_ms,
        "calls": calls,
        "input_hw": list(input_hw),
    }


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024.0


def _peak_rss_growth(model: nn.Module, input_hw: tuple[int, int], results) -> None:
    """Runs in a fresh process: RSS high-water growth of one forward after a warm-up."""
    torch.set_num_threads(1)
    with torch.inference_mode():
        model(torch.rand(1, 3, 16, 16))  # load kernels and libraries before the baseline
        x = torch.rand(1, 3, *input_hw)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the high-water mark to the current RSS (Linux >= 4.0)
        baseline = _status_mb("VmRSS")
        model(x)
    results.put(_status_mb("VmHWM") - baseline)


def measure_peak_memory(
    model: nn.Module, input_hw: tuple[int, int], device: str = "cpu"
) -> float | None:
    """Peak memory (MB) one forward adds; None where it cannot be measured (CPU off Linux)."""
    model = model.to(device).eval()
    if device.startswith("cuda"):
        with torch.inference_mode():
            x = torch.rand(1, 3, *input_hw, device=device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            model(x)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    # A fresh (spawned) process: its high-water mark holds nothing but this model's forward.
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_peak_rss_growth, args=(model, tuple(input_hw), results))
    process.start()
    process.join()
    return results.get(timeout=5) if process.exitcode == 0 else None


def efficiency_report(
    model: nn.Module,
    input_hw: tuple[int, int] = (256, 256),
    latency_hw: tuple[int, int] | None = None,
    device: str = "cpu",
    repeats: int = 10,
) -> EfficiencyReport:
    """Parameters and MACs at ``input_hw``; latency and peak memory at ``latency_hw`` if given."""
    flops = count_flops(model, input_hw)
    report = EfficiencyReport(
        params=count_parameters(model),
        macs_g=flops / 2e9,
        flops_g=flops / 1e9,
        input_hw=tuple(input_hw),
        device=device,
    )
    if latency_hw is not None:
        report.latency_hw = tuple(latency_hw)
        report.latency_ms = measure_latency(model, latency_hw, device, repeats=repeats)
        report.peak_memory_mb = measure_peak_memory(model, latency_hw, device)
    return report


def deployed_flops_g(student: torch.nn.Module) -> float | None:
    """The papers' "FLOPs" of the deployed student in G: multiply-accumulates at an LR input of
    3x256x256 (MCAD-KD Tab. 2, NTIRE efficient SR; half of torch's FLOP count), counted on the
    meta device. A network the counter cannot trace costs the figure a point, never the run: None
    and one warning."""
    try:
        return count_flops(student, (256, 256)) / 2e9
    except Exception as err:  # noqa: BLE001 - any failure of an optional statistic
        log.warning("FLOPs of the student not counted (results.json flops_g: null): %s", err)
        return None
