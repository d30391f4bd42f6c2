"""Check a CUDA GPU with srdistill: the training step, bf16, channels_last, compile and DDP.

One row per check, each timed and compared with a reference computation:

  lightning_vs_plain     the MCAD-KD step under Trainer.fit against the same step as a plain
                         PyTorch loop (benchmarks/train_step.py's arms); parity: their weights
                         after the same steps from the same weights and seed
  online_vs_cached       the step with the teacher run online against the teacher's output
                         carried by the batch (what teacher.cache=true serves); parity: weights
  bf16_mixed             trainer precision bf16-mixed (trainer=gpu_bf16) against float32
  teacher_autocast_bf16  perf.teacher_autocast=bf16 against float32
  channels_last          perf.channels_last=true against the default layout
  channels_last_bf16     both at once, the layout's case on tensor-core GPUs
  compile                perf.compile=true (perf.compile_backend) against eager
  ddp_two_processes      train.py experiment=smoke loss=mcad trainer=ddp trainer.devices=2, with
                         two or more GPUs

The option rows time the same online MCAD-KD step through Trainer.fit; their parity is the
largest |difference| of the student's and the teacher's output on the batch after the same
steps, each computed as that run computes it (its precision, layout, compiled networks).

python benchmarks/gpu_check.py --json outputs/gpu_check/gpu_check.json
python benchmarks/gpu_check.py --device cpu     # the same checks on tiny networks
"""

from __future__ import annotations

import copy
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import torch
import train_step as bench
from lightning import Callback
from omegaconf import OmegaConf
from torch._dynamo import list_backends

from srdistill.environment import run_environment
from srdistill.outputs import OutputError, ensure_writable_file, write_json
from srdistill.training.perf import SpeedOptions

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = Path("outputs/gpu_check/gpu_check.json")
SIZES = ("batch", "patch", "teacher_width", "teacher_blocks", "student_width", "student_blocks")
TIMING = ("steps", "warmup", "repeats", "check_steps")
PROFILES = {
    # MCAD-KD's Tab. 2 EDSR pair (256 / 64 channels, 32 blocks), batch 16 of 48x48 LR patches
    "cuda": dict(batch=16, patch=48, teacher_width=256, teacher_blocks=32, student_width=64,
                 student_blocks=32, steps=5, warmup=3, repeats=4, check_steps=3),
    # seconds on a CPU: tiny networks, HR 48 patches (MCAD's contrast windows)
    "tiny": dict(batch=2, patch=12, teacher_width=8, teacher_blocks=2, student_width=4,
                 student_blocks=2, steps=2, warmup=1, repeats=2, check_steps=2),
}  # fmt: skip
# inductor needs a C/C++ compiler on the CPU; aot_eager traces the same graphs without one
COMPILE_BACKEND = {"cuda": "inductor", "cpu": "aot_eager"}
# tolerances: weights of the same computation; outputs relative to the reference's largest
# value: float32 reordered (other kernels, TF32 convolutions on CUDA), bf16 (8-bit mantissa)
SAME_WEIGHTS_TOL = 1e-6
FLOAT32_REL_TOL = 1e-2
BF16_REL_TOL = 5e-2


class Option(NamedTuple):
    """How a run computes: the trainer's precision and train.py's perf options."""

    precision: str = "32-true"
    teacher_autocast: str | None = None  # perf.teacher_autocast
    channels_last: bool = False  # perf.channels_last
    compiled: bool = False  # perf.compile

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16-mixed" or self.teacher_autocast == "bf16"


OPTIONS = {
    "bf16_mixed": Option(precision="bf16-mixed"),
    "teacher_autocast_bf16": Option(teacher_autocast="bf16"),
    "channels_last": Option(channels_last=True),
    "channels_last_bf16": Option(precision="bf16-mixed", channels_last=True),
    "compile": Option(compiled=True),
}


# ----- the training-step benchmark's arms ------------------------------------------------------
def module_weights(module) -> list[torch.Tensor]:
    """The weights a MCAD-KD step trains: student, loss heads, discriminator."""
    networks = (module.student, module.loss, module.discriminator)
    return [p.detach() for network in networks for p in network.parameters()]


def max_abs_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x.float() - y.float()).abs().max()) for x, y in zip(a, b, strict=True))


def online_vs_cached_weights(models, batch: dict, cached: dict, args) -> float:
    """Largest |weight difference| after the same steps with the teacher online and cached."""
    online, offline = models.module("mcad"), models.module("mcad")
    bench.fit(online, batch, args.check_steps, args, seed=args.seed)
    bench.fit(offline, cached, args.check_steps, args, seed=args.seed)
    return max_abs_diff(module_weights(online), module_weights(offline))


def train_step_checks(models, batch: dict, args) -> tuple[dict, dict]:
    """The plain loop, Lightning, online and cached teacher arms, round-robin as in
    benchmarks/train_step.py; their two rows and the medians."""
    plain_diff = bench.identical_step_check(models, batch, args)
    cached = {**batch, "sr_t": models.module("mcad").teacher_forward(batch["lq"])[0]}
    cached_diff = online_vs_cached_weights(models, batch, cached, args)
    arms = ("plain", "mcad_online", "mcad_cached", "teacher_forward")
    runners = {k: v for k, v in bench.arm_runners(models, batch, args).items() if k in arms}
    times = bench.measure(runners, args)
    ms = {k: 1e3 * statistics.median([t for b in v for t in b]) for k, v in times.items()}
    rows = {
        "lightning_vs_plain": row(
            "Lightning ms / plain loop ms", ms["mcad_online"] / ms["plain"], plain_diff,
            SAME_WEIGHTS_TOL, "weights after the same steps",
        ),
        "online_vs_cached": row(
            "online ms / cached ms", ms["mcad_online"] / ms["mcad_cached"], cached_diff,
            SAME_WEIGHTS_TOL, "weights after the same steps",
        ),
    }  # fmt: skip
    rows["online_vs_cached"]["cache_removed_share"] = bench.RATIOS["cache_removed_share"](ms)
    return rows, ms


def row(measure: str, value: float, diff: float, tol: float, parity_of: str, **more) -> dict:
    return {
        "measure": measure,
        "value": value,
        "parity_max_abs_diff": diff,
        "parity_of": parity_of,
        "tolerance": tol,
        "passed": math.isfinite(value) and diff <= tol,
        **more,
    }


# ----- the speed options, each against float32 eager -------------------------------------------
class OutputProbe(Callback):
    """After the last step: the student's and the teacher's output on the batch, computed as the
    run computes them (its autocast, layout and compiled networks, before they are uncompiled)."""

    def __init__(self, last_step: int) -> None:
        self.last_step = last_step
        self.outputs: tuple[torch.Tensor, torch.Tensor] | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx != self.last_step:
            return
        # the student with gradients on: a compiled student reuses its training graph
        with trainer.precision_plugin.forward_context():
            sr_s = pl_module.student(batch["lq"]).detach().float()
            sr_t = pl_module.teacher_forward(batch["lq"])[0].float()
        self.outputs = (sr_s, sr_t)


def run_option(models, batch: dict, option: Option, args) -> tuple[float, tuple]:
    """Median step ms and outputs of the online MCAD-KD step run with ``option``."""
    # a teacher of its own: channels_last changes the layout of the module's networks in place
    module = copy.deepcopy(models.module("mcad", teacher_autocast=option.teacher_autocast))
    steps = args.warmup + args.steps * args.repeats
    probe = OutputProbe(steps - 1)
    compiled = (args.compile_backend, args.compile_mode) if option.compiled else (None, None)
    speed = SpeedOptions(option.channels_last, *compiled)
    times = bench.fit(module, batch, steps, args, args.seed, option.precision, [probe, speed])
    return 1e3 * statistics.median(times[args.warmup - 1 :]), probe.outputs


def option_checks(models, batch: dict, args) -> dict:
    reference_ms, reference = run_option(models, batch, Option(), args)
    scale = max(float(out.abs().max()) for out in reference)
    rows = {}
    for name, option in OPTIONS.items():
        ms, outputs = run_option(models, batch, option, args)
        rel = BF16_REL_TOL if option.bf16 else FLOAT32_REL_TOL
        diffs = [float((a - b).abs().max()) for a, b in zip(outputs, reference, strict=True)]
        rows[name] = row(
            "float32 ms / this ms", reference_ms / ms, max(diffs), rel * scale,
            f"student and teacher outputs after the same steps ({rel:g} x largest output)",
            step_ms=ms, reference_ms=reference_ms, student_diff=diffs[0], teacher_diff=diffs[1],
        )  # fmt: skip
    return rows


# ----- DDP with two processes ---------------------------------------------------------------
def ddp_check(args) -> dict:
    gpus = torch.cuda.device_count() if args.device.startswith("cuda") else 0
    if args.device == "cpu":
        reason = (
            "--device cpu: two gloo processes take tens of seconds to start on a small CPU; "
            "make test-slow runs trainer=ddp_cpu (tests/integration/test_train_perf.py)"
        )
        return {"skipped": reason, "passed": None}
    if gpus < 2:
        return {"skipped": f"needs 2 CUDA GPUs; this machine has {gpus}", "passed": None}
    run_dir = Path(args.root_dir) / "ddp"
    command = [sys.executable, "train.py", "experiment=smoke", "loss=mcad", "trainer=ddp"]
    command += ["trainer.devices=2", f"hydra.run.dir={run_dir}"]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return {"measure": "exit code", "value": proc.returncode, "passed": False,
                "stderr_tail": proc.stderr[-2000:]}  # fmt: skip
    results = json.loads((run_dir / "results.json").read_text())
    smoke = OmegaConf.load(REPO_ROOT / "conf" / "experiment" / "smoke.yaml")
    psnr = results["val"]["val/SampleVal/psnr_y"]
    passed = results["steps"] == smoke.trainer.max_steps and math.isfinite(psnr)
    return {"measure": "wall s of the smoke run", "value": seconds, "psnr_y": psnr,
            "command": " ".join(command[1:-1]), "passed": passed}  # fmt: skip


# ----- options, report ----------------------------------------------------------------------
def parse_args(argv=None):
    parser = bench.build_parser(__doc__.splitlines()[0])
    parser.set_defaults(json=DEFAULT_JSON, device="cuda", **dict.fromkeys(SIZES + TIMING))
    parser.add_argument("--quick", action="store_true", help="tiny networks on any device")
    parser.add_argument(
        "--compile-backend", default=None, help="perf.compile_backend (inductor on CUDA, "
        "aot_eager on the CPU: no C compiler needed)",
    )  # fmt: skip
    parser.add_argument("--compile-mode", default=None, help="perf.compile_mode (inductor)")
    parser.epilog = "sizes and step counts left unset: " + "; ".join(
        f"{kind}: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in profile.items())
        for kind, profile in (("CUDA", PROFILES["cuda"]), ("CPU or --quick", PROFILES["tiny"]))
    )
    args = parser.parse_args(argv)
    if args.device != "cpu" and not args.device.startswith("cuda"):
        parser.error(f"--device {args.device}: give cuda, cuda:N or cpu")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA GPU is available; --device cpu runs these checks on the CPU")
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    profile = PROFILES["tiny" if args.quick or kind == "cpu" else "cuda"]
    for name, value in profile.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.compile_backend = args.compile_backend or COMPILE_BACKEND[kind]
    if args.compile_backend not in list_backends(exclude_tags=()):
        parser.error(f"--compile-backend {args.compile_backend}: give one of inductor, aot_eager")
    if args.compile_mode is not None and args.compile_backend != "inductor":
        parser.error("--compile-mode applies to --compile-backend inductor only")
    bench.check_args(parser, args)
    try:
        ensure_writable_file(args.json, "--json")
    except OutputError as err:
        parser.error(str(err))
    return args


def setup(args) -> dict:
    on_cuda = args.device.startswith("cuda")
    return {
        "device": args.device,
        "device_name": bench.device_name(args.device),
        "gpus": torch.cuda.device_count() if on_cuda else 0,
        "environment": run_environment(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32 if on_cuda else None,
        "compile_backend": args.compile_backend,
        "compile_mode": args.compile_mode,
        "threads": torch.get_num_threads(),
        **{name: getattr(args, name) for name in (*SIZES, "scale", *TIMING, "seed")},
        "timed_steps_per_option": args.steps * args.repeats,
    }


LINE = "{:22s} {:28s} {:>8s} {:>10s} {:>10s}  {}"


def number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(checks: dict) -> None:
    print("\n" + LINE.format("check", "measure", "value", "parity", "tolerance", "result"))
    for name, c in checks.items():
        if "skipped" in c:
            print(f"{name:22s} skipped: {c['skipped']}")
            continue
        print(
            LINE.format(
                name,
                c["measure"],
                number(c["value"], ".3f"),
                number(c.get("parity_max_abs_diff"), ".3g"),
                number(c.get("tolerance"), ".3g"),
                "pass" if c["passed"] else "FAIL",
            )
        )


def main(argv=None) -> dict:
    args = parse_args(argv)
    bench.quiet()
    if args.threads and not args.device.startswith("cuda"):
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as root:
        args.root_dir = root
        models = bench.Models(args)
        batch = bench.fixed_batch(args)
        checks, medians = train_step_checks(models, batch, args)
        checks.update(option_checks(models, batch, args))
        checks["ddp_two_processes"] = ddp_check(args)
    result = {"checks": checks, "train_step_medians_ms": medians, "setup": setup(args)}
    print_table(checks)
    write_json(args.json, result, "--json")
    print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    sys.exit(0 if all(c["passed"] is not False for c in main()["checks"].values()) else 1)
