"""What does a training step cost: the framework against a plain loop, and the teacher's share.

Arms, timed step by step in one process, round-robin in blocks (warm-up steps of each block
discarded), on one fixed batch of real sample-photo crops:

  plain              the MCAD-KD iteration as a hand-written PyTorch loop (the reference)
  mcad_online        DistillationModule + Trainer.fit, loss=mcad, teacher run every step
  scratch            DistillationModule + Trainer.fit, loss=scratch (the student alone)
  mcad_cached        as mcad_online, the batch carrying the teacher's output (``sr_t``)
  teacher_forward    the teacher's forward alone (no_grad, eval)
  student_forward    the student's forward alone (for the measured forward-cost ratio)
  kd_cached          breakdown: MCAD's rec + resp terms, teacher output cached
  kd_cont_cached     breakdown: + the contrastive term (projection heads, windows)

Before timing, the plain loop and the module run the same steps from identical copies with the
same seed, and the largest difference between their weights is printed and stored: the
reference does exactly the module's step.

python benchmarks/train_step.py --json outputs/bench/train_step.json
"""

from __future__ import annotations

import copy
import logging
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from hydra.utils import instantiate
from lightning import Callback, Trainer
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, Dataset

from srdistill.cli.arguments import OneLineErrorParser
from srdistill.cli.builders import build_loss
from srdistill.data.samples import sample_paired_dataset
from srdistill.environment import run_environment
from srdistill.eval.cost import count_parameters
from srdistill.losses.adversarial import discriminator_loss
from srdistill.losses.context import StepContext
from srdistill.models.backbones.edsr import EDSR
from srdistill.module import DistillationModule
from srdistill.outputs import write_json

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
TRAINER_ARMS = ("mcad_online", "scratch", "mcad_cached", "kd_cached", "kd_cont_cached")
ARMS = ("plain", *TRAINER_ARMS, "teacher_forward", "student_forward")
# the breakdown arms keep these of MCAD's terms (the others get weight 0: not built)
BREAKDOWN_TERMS = {"kd_cached": ("rec", "resp"), "kd_cont_cached": ("rec", "resp", "cont")}


# ----- models, losses, optimisers: what train.py would build -----------------------------------
def edsr(scale: int, width: int, blocks: int, res_scale: float) -> EDSR:
    return EDSR(scale=scale, num_feat=width, num_block=blocks, res_scale=res_scale)


def mcad_config(keep: tuple[str, ...] | None = None):
    """conf/loss/mcad.yaml, with the terms not in ``keep`` at weight 0 (left out unbuilt)."""
    cfg = OmegaConf.load(CONF_DIR / "loss" / "mcad.yaml")
    for name in cfg.terms:
        if keep is not None and name not in keep:
            cfg.terms[name].weight = 0.0
    return cfg


def optimizer_factories():
    """train.py's optimisers and schedulers (conf/train.yaml) for G and D."""
    cfg = OmegaConf.load(CONF_DIR / "train.yaml")
    names = ("optimizer", "d_optimizer", "scheduler", "d_scheduler")
    return {name: instantiate(cfg[name]) for name in names}


class Models:
    """One set of initial weights; every arm trains its own copy of them."""

    def __init__(self, args) -> None:
        torch.manual_seed(args.seed)
        self.teacher = edsr(args.scale, args.teacher_width, args.teacher_blocks, 0.1).eval()
        self.student = edsr(args.scale, args.student_width, args.student_blocks, 1.0)
        self.mcad_cfg = mcad_config()
        self.loss = build_loss(self.mcad_cfg)  # MCAD's heads and temperature
        # D scaled with the pair: MCAD's num_feat times student width / 64 (Tab. 2's student)
        self.mcad_cfg.discriminator.num_feat = args.disc_width or max(
            1, self.mcad_cfg.discriminator.num_feat * args.student_width // 64
        )
        self.discriminator = instantiate(self.mcad_cfg.discriminator)
        self.factories = optimizer_factories()
        for model in (self.teacher, self.student, self.loss, self.discriminator):
            model.to(args.device)
        self.teacher.requires_grad_(False)

    def module(self, loss_name: str, teacher_autocast: str | None = None) -> DistillationModule:
        """A fresh DistillationModule on copies of the initial weights (the teacher shared)."""
        if loss_name == "scratch":
            loss = build_loss(OmegaConf.load(CONF_DIR / "loss" / "scratch.yaml"))
            discriminator = None
        else:
            keep = BREAKDOWN_TERMS.get(loss_name)
            loss = copy.deepcopy(self.loss) if keep is None else build_loss(mcad_config(keep))
            discriminator = copy.deepcopy(self.discriminator) if "adv" in loss.terms else None
            if keep is not None:  # the breakdown's heads start where MCAD's do
                loss.load_state_dict(self.loss.state_dict(), strict=False)
        return DistillationModule(
            copy.deepcopy(self.student),
            loss.to(self.teacher.conv_first.weight.device),
            self.factories["optimizer"],
            teacher=self.teacher if loss.needs_teacher else None,
            discriminator=discriminator,
            d_optimizer=self.factories["d_optimizer"],
            scheduler=self.factories["scheduler"],
            d_scheduler=self.factories["d_scheduler"],
            d_loss_scale=float(self.mcad_cfg.d_loss_scale),
            step_order=str(self.mcad_cfg.step_order),
            teacher_autocast=teacher_autocast,
        )

    def plain(self) -> PlainMcadStep:
        return PlainMcadStep(
            copy.deepcopy(self.student),
            self.teacher,
            copy.deepcopy(self.loss),
            copy.deepcopy(self.discriminator),
            float(self.mcad_cfg.d_loss_scale),
            self.factories,
        )


class PlainMcadStep:
    """The reference: one MCAD-KD iteration (G step, then D step) written as plain PyTorch.

    The loss terms are the framework's, used as functions; everything else (forward passes,
    zero_grad, backward, optimizer and scheduler steps, freezing D for the G step) is here.
    """

    def __init__(self, student, teacher, loss, discriminator, d_loss_scale, factories) -> None:
        self.student, self.teacher, self.loss, self.d = student, teacher, loss, discriminator
        self.d_loss_scale = d_loss_scale
        g_params = [p for m in (student, loss) for p in m.parameters() if p.requires_grad]
        self.opt_g = factories["optimizer"](g_params)
        self.opt_d = factories["d_optimizer"](discriminator.parameters())
        self.sched_g = factories["scheduler"](self.opt_g)
        self.sched_d = factories["d_scheduler"](self.opt_d)
        student.train()
        loss.train()
        discriminator.train()

    def step(self, batch: dict) -> None:
        lq, gt = batch["lq"], batch["gt"]
        sr_s = self.student(lq)
        with torch.no_grad():
            sr_t = self.teacher(lq)
        # generator step: D judges the student but takes no gradient
        self.d.requires_grad_(False)
        ctx = StepContext(lq=lq, gt=gt, sr_s=sr_s, sr_t=sr_t, discriminator=self.d)
        total, _ = self.loss(ctx)
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        # discriminator step on the student's output of this iteration
        self.d.requires_grad_(True)
        real, fake = self.d(gt), self.d(sr_s.detach())
        loss_d = discriminator_loss(real, fake, self.d_loss_scale)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        self.sched_g.step()
        self.sched_d.step()

    def weights(self) -> list[torch.Tensor]:
        return [*self.student.parameters(), *self.loss.parameters(), *self.d.parameters()]


# ----- the batch and the loader -------------------------------------------------------------
def fixed_batch(args) -> dict[str, torch.Tensor]:
    """``batch`` aligned crops of the embedded sample photos, drawn from ``seed``."""
    dataset = sample_paired_dataset(args.scale, args.patch)
    items = [dataset[(i, args.seed + i)] for i in range(args.batch)]
    return {k: torch.stack([item[k] for item in items]).to(args.device) for k in ("lq", "gt")}


class SameBatch(Dataset):
    """``length`` times the same (already collated, already on the device) batch."""

    def __init__(self, batch: dict, length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        return self.batch


def loader(batch: dict, length: int) -> DataLoader:
    return DataLoader(SameBatch(batch, length), batch_size=None)


# ----- timing ------------------------------------------------------------------------------
def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class StepTimer(Callback):
    """Seconds between consecutive ends of training steps (Trainer start-up excluded); seeds
    torch's RNG before the first step when ``seed`` is given."""

    def __init__(self, device: str, seed: int | None = None) -> None:
        self.device, self.seed = device, seed
        self.ends: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0 and self.seed is not None:
            torch.manual_seed(self.seed)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        synchronize(self.device)
        self.ends.append(time.perf_counter())


def fit(
    module: DistillationModule,
    batch: dict,
    steps: int,
    args,
    seed=None,
    precision: str = "32-true",
    callbacks: Sequence[Callback] = (),
) -> list[float]:
    """``Trainer.fit`` for ``steps`` steps in ``precision``, with ``callbacks`` after the step
    timer; the time of every step but the first."""
    timer = StepTimer(args.device, seed)
    on_cuda = args.device.startswith("cuda")
    trainer = Trainer(
        accelerator="gpu" if on_cuda else "cpu",
        devices=[torch.device(args.device).index or 0] if on_cuda else 1,  # cuda:N is GPU N
        precision=precision,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer, *callbacks],
        default_root_dir=args.root_dir,
    )
    trainer.fit(module, loader(batch, steps))
    return [b - a for a, b in zip(timer.ends, timer.ends[1:], strict=False)]


def loop(step: Callable[[dict], object], batch: dict, steps: int, args, seed=None) -> list[float]:
    """The same measurement for a plain loop: time between consecutive step ends."""
    ends = []
    for index, item in enumerate(loader(batch, steps)):
        if index == 0 and seed is not None:
            torch.manual_seed(seed)
        step(item)
        synchronize(args.device)
        ends.append(time.perf_counter())
    return [b - a for a, b in zip(ends, ends[1:], strict=False)]


def identical_step_check(models: Models, batch: dict, args) -> float:
    """Largest |weight difference| between the plain loop and the module after the same steps
    from identical copies and the same seed (0 up to float summation order)."""
    plain, module = models.plain(), models.module("mcad")
    loop(plain.step, batch, args.check_steps, args, seed=args.seed)
    fit(module, batch, args.check_steps, args, seed=args.seed)
    trained = [*module.student.parameters(), *module.loss.parameters()]
    trained += list(module.discriminator.parameters())
    pairs = zip(plain.weights(), trained, strict=True)
    return max(float((a.detach() - b.detach()).abs().max()) for a, b in pairs)


def arm_runners(models: Models, batch: dict, args) -> dict[str, Callable[[int], list[float]]]:
    """Each arm as ``run(steps) -> step times``; the trained arms keep training across blocks."""
    cached = {**batch, "sr_t": models.module("mcad").teacher_forward(batch["lq"])[0]}
    plain = models.plain()
    modules = {
        "mcad_online": (models.module("mcad"), batch),
        "scratch": (models.module("scratch"), batch),
        "mcad_cached": (models.module("mcad"), cached),
        "kd_cached": (models.module("kd_cached"), cached),
        "kd_cont_cached": (models.module("kd_cont_cached"), cached),
    }
    teacher, student = models.teacher, copy.deepcopy(models.student).eval()

    def forward(model: nn.Module) -> Callable[[dict], torch.Tensor]:
        return torch.no_grad()(lambda item: model(item["lq"]))

    runners = {"plain": lambda n: loop(plain.step, batch, n, args)}
    for name, (module, data) in modules.items():
        runners[name] = lambda n, m=module, d=data: fit(m, d, n, args)
    runners["teacher_forward"] = lambda n: loop(forward(teacher), batch, n, args)
    runners["student_forward"] = lambda n: loop(forward(student), batch, n, args)
    return runners


def measure(runners: dict, args) -> dict[str, list[list[float]]]:
    """Per arm, per round, the timed steps of its block (the warm-up steps dropped); the arm
    order rotates from round to round so that no arm always follows the same one."""
    times: dict[str, list[list[float]]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            # steps + warmup steps; the first step has no start time of its own (dropped too)
            block = runners[name](args.steps + args.warmup)
            times[name].append(block[args.warmup - 1 :] if args.warmup else block)
        print(f"round {r + 1}/{args.repeats} done", flush=True)
    return times


# ----- results ----------------------------------------------------------------------------
RATIOS = {
    "lightning_over_plain": lambda m: m["mcad_online"] / m["plain"],
    "mcad_online_over_scratch": lambda m: m["mcad_online"] / m["scratch"],
    "mcad_cached_over_scratch": lambda m: m["mcad_cached"] / m["scratch"],
    "teacher_share": lambda m: m["teacher_forward"] / m["mcad_online"],
    "cache_removed_share": lambda m: (m["mcad_online"] - m["mcad_cached"]) / m["teacher_forward"],
    "teacher_over_student_forward": lambda m: m["teacher_forward"] / m["student_forward"],
}


def spread(values: list[float]) -> dict[str, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return {"min": min(values), "q1": q1, "median": q2, "q3": q3, "max": max(values)}


def breakdown(m: dict[str, float]) -> list[dict]:
    """Where MCAD's step goes, term by term, as differences between arms."""
    rows = [
        ("student step (scratch: rec only)", m["scratch"]),
        ("+ response KD term (teacher output given)", m["kd_cached"] - m["scratch"]),
        ("+ contrastive term (heads, windows, InfoNCE)", m["kd_cont_cached"] - m["kd_cached"]),
        ("+ adversarial term and D step", m["mcad_cached"] - m["kd_cont_cached"]),
        ("+ teacher forward (online teacher)", m["mcad_online"] - m["mcad_cached"]),
    ]
    return [{"part": p, "ms": ms, "share": ms / m["mcad_online"]} for p, ms in rows]


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def summarise(times: dict, models: Models, max_diff: float, args) -> dict:
    medians = {k: 1e3 * statistics.median([t for b in v for t in b]) for k, v in times.items()}
    per_round = [
        {k: 1e3 * statistics.median(v[r]) for k, v in times.items()} for r in range(args.repeats)
    ]
    result = {name: f(medians) for name, f in RATIOS.items()}
    result["ratio_spread"] = {name: spread([f(m) for m in per_round]) for name, f in RATIOS.items()}
    result["medians_ms"] = medians
    result["spread_ms"] = {k: spread([1e3 * t for b in v for t in b]) for k, v in times.items()}
    result["breakdown"] = breakdown(medians)
    result["plain_vs_module_max_abs_diff"] = max_diff
    result["acceptance"] = {
        "lightning_over_plain <= 1.05": result["lightning_over_plain"] <= 1.05,
        "cache_removed_share >= 0.9": result["cache_removed_share"] >= 0.9,
        "teacher_over_student_forward >= 8": result["teacher_over_student_forward"] >= 8,
    }
    result["models"] = {
        "teacher": {
            "name": f"EDSR {args.teacher_width}ch x {args.teacher_blocks} blocks",
            "params": count_parameters(models.teacher),
        },
        "student": {
            "name": f"EDSR {args.student_width}ch x {args.student_blocks} blocks",
            "params": count_parameters(models.student),
        },
        "discriminator": {
            "name": f"UNetDiscriminatorSN {models.mcad_cfg.discriminator.num_feat}ch",
            "params": count_parameters(models.discriminator),
        },
        "contrastive_heads": {
            "name": "MCAD projection heads + temperature",
            "params": count_parameters(models.loss),
        },
    }
    result["setup"] = {
        "device": args.device,
        "device_name": device_name(args.device),
        "threads": torch.get_num_threads(),
        "environment": run_environment(),
        "batch": args.batch,
        "lr_patch": args.patch,
        "hr_patch": args.patch * args.scale,
        "scale": args.scale,
        "steps_per_block": args.steps,
        "warmup_per_block": args.warmup,
        "rounds": args.repeats,
        "seed": args.seed,
        "batch_source": "aligned crops of the embedded sample photos (SampleTrain)",
    }
    return result


def print_report(result: dict) -> None:
    print("\narm                 median ms   (min .. max over steps)")
    for name, ms in result["medians_ms"].items():
        s = result["spread_ms"][name]
        print(f"{name:18s} {ms:10.2f}   ({s['min']:.2f} .. {s['max']:.2f})")
    print("\nratio                          value   (min .. max over rounds)")
    for name in RATIOS:
        s = result["ratio_spread"][name]
        print(f"{name:28s} {result[name]:8.3f}   ({s['min']:.3f} .. {s['max']:.3f})")
    print("\nwhere MCAD's online step goes      ms    share")
    for row in result["breakdown"]:
        print(f"{row['part']:46s} {row['ms']:8.2f} {100 * row['share']:6.1f}%")
    diff = result["plain_vs_module_max_abs_diff"]
    print(f"\nplain loop vs module, max |weight difference|: {diff:.3g}")
    for target, met in result["acceptance"].items():
        print(f"{target}: {'met' if met else 'NOT met'}")


def build_parser(description: str = __doc__.splitlines()[0]) -> OneLineErrorParser:
    """This benchmark's options (benchmarks/gpu_check.py builds on them)."""
    parser = OneLineErrorParser(description=description)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per arm and round")
    parser.add_argument("--warmup", type=int, default=1, help="discarded steps per block (>= 1)")
    parser.add_argument("--repeats", type=int, default=8, help="rounds over all arms")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--patch", type=int, default=16, help="LR patch size")
    parser.add_argument("--scale", type=int, default=4)
    # MCAD-KD's Tab. 2 EDSR pair (256 ch / 64 ch, 32 blocks each) at half the width
    parser.add_argument("--teacher-width", type=int, default=128)
    parser.add_argument("--teacher-blocks", type=int, default=32)
    parser.add_argument("--student-width", type=int, default=32)
    parser.add_argument("--student-blocks", type=int, default=32)
    parser.add_argument(
        "--disc-width", type=int, default=0, help="D's num_feat (0: scaled with the student)"
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check-steps", type=int, default=3, help="steps of the weight check")
    return parser


def check_args(parser: OneLineErrorParser, args) -> None:
    """One ``error:`` line and exit 2 for a count below 1 or a CUDA device that is not there."""
    counts = ("steps", "repeats", "batch", "patch", "scale", "teacher_width", "teacher_blocks")
    counts += ("student_width", "student_blocks", "check_steps")
    for name in counts:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if args.warmup < 1:
        parser.error("--warmup must be at least 1 (a block's first step has no start time)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def quiet() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    for message in (
        r".*module\(s\) in eval mode.*",
        r".*logging interval.*",
        r".*num_workers.*",
        r".*no `val_dataloader`.*",
        r".*LeafSpec.*",
    ):
        warnings.filterwarnings("ignore", message=message)


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet()
    if args.threads and not args.device.startswith("cuda"):
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as root:
        args.root_dir = root
        models = Models(args)
        batch = fixed_batch(args)
        max_diff = identical_step_check(models, batch, args)
        print(f"plain loop vs module after {args.check_steps} steps: max |dw| = {max_diff:.3g}")
        times = measure(arm_runners(models, batch, args), args)
    result = summarise(times, models, max_diff, args)
    print_report(result)
    if args.json:
        write_json(args.json, result, "--json")
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
