"""DistillationModule: a frozen teacher, a learning student, optional discriminator.

Manual optimisation: each iteration runs a generator step (student + loss-term parameters such as
projection heads and temperature) on the weighted loss with D untouched, and, when a
discriminator is configured, a D step on ``L_D`` with the student output detached. The order is
``g_then_d`` (default) or ``d_then_g`` (the released MCAD-KD code, which also puts D in eval mode
for the generator step: ``d_eval_in_generator_step``). With ``loss.step_groups`` (DUKD) the
generator step is one optimizer step per group of terms, each group evaluated with the student
the previous step left; the iteration still counts as one step. The teacher is frozen, kept in
eval mode, never given to an optimiser and never written into run checkpoints (only its path and
SHA-256 are). A batch that carries ``sr_t`` (the teacher-output cache, data/teacher_cache.py)
replaces the teacher's forward pass for losses that read only the teacher's output.

Validation scores what ships: with adapters or ``average_weight``, ``val/<set>/...`` is the
deployed network (``export_student``: the EMA copy when EMA is on, adapters merged, averaged,
folded; built once per validation epoch) and ``val_ema/<set>/...`` (EMA on) or
``val_trained/<set>/...`` (EMA off) the same network as trained, before merging and
averaging. Without either, the two would be one network and only ``val/`` is logged.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from lightning import LightningModule
from torch import nn

from srdistill.eval.ensemble import SelfEnsemble
from srdistill.lora.inject import lora_modules, lora_param_groups
from srdistill.lora.merge import deployable
from srdistill.losses.adversarial import discriminator_loss
from srdistill.losses.combine import WeightedLoss
from srdistill.losses.context import StepContext
from srdistill.metrics.sr import PSNR, SSIM
from srdistill.training import perf
from srdistill.training.ema import ExponentialMovingAverage
from srdistill.training.grad_share import REFERENCE, check_grad_share_every, grad_shares
from srdistill.training.nonfinite import (
    NonFiniteGuard,
    check_finite_lr,
    gradients_finite,
)
from srdistill.training.rng import capture_rng_state, restore_rng_state

STEP_ORDERS = ("g_then_d", "d_then_g")


def freeze(module: nn.Module) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _step_without_counting(optimizer) -> None:
    """Step an optimizer without advancing ``trainer.global_step``.

    In manual optimisation Lightning counts every optimizer step, so a G+D iteration would count
    twice and ``max_steps``/schedules would mean half as many iterations. Only the generator's
    step counts: one iteration is one step, whatever the number of optimizers.
    """
    counted = optimizer._on_before_step, optimizer._on_after_step
    optimizer._on_before_step = optimizer._on_after_step = lambda: None
    try:
        optimizer.step()
    finally:
        optimizer._on_before_step, optimizer._on_after_step = counted


@contextmanager
def _eval_mode(module: nn.Module | None, enabled: bool) -> Iterator[None]:
    """``module`` in eval mode inside the block when ``enabled``; its previous mode after."""
    was_training = module.training if module is not None else False
    if enabled and module is not None:
        module.eval()
    try:
        yield
    finally:
        if enabled and module is not None:
            module.train(was_training)


def _forward_with_taps(model: nn.Module, x: torch.Tensor, taps: Sequence[str]):
    if not taps:
        return model(x), {}
    return model.forward_intermediates(x, taps)


def _check_taps(model: nn.Module | None, taps: Sequence[str], role: str) -> None:
    """Fail at construction, not mid-step, when a feature loss asks for what a model lacks."""
    if not taps or model is None:
        return
    available = getattr(model, "tap_names", None)
    if available is None:
        raise ValueError(f"the loss reads {role} features {list(taps)} but the {role} has no taps")
    unknown = [t for t in taps if t not in available]
    if unknown:
        raise ValueError(
            f"the loss reads {role} features {unknown}, which {type(model).__name__} does not "
            f"record; available: {list(available)}"
        )


class DistillationModule(LightningModule):
    def __init__(
        self,
        student: nn.Module,
        loss: WeightedLoss,
        optimizer: Callable,
        teacher: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        d_optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        d_scheduler: Callable | None = None,
        d_loss_scale: float = 1.0,
        step_order: str = "g_then_d",
        grad_clip_norm: float | None = None,
        ema_decay: float | None = None,
        val_sets: Sequence[str] = ("Set5",),
        scale: int = 4,
        teacher_identity: dict | None = None,
        average_weight: float | None = None,
        pretrained_student: dict[str, torch.Tensor] | None = None,
        student_build: dict | None = None,
        max_nonfinite_steps: int | None = 5,
        d_eval_in_generator_step: bool = False,
        grad_share_every: int | None = None,
        val_self_ensemble: bool = False,
        channels_last: bool = False,
        compile_backend: str | None = None,
        compile_mode: str | None = None,
        teacher_autocast: str | None = None,
    ) -> None:
        super().__init__()
        if step_order not in STEP_ORDERS:
            raise ValueError(f"step_order must be one of {STEP_ORDERS}, got {step_order!r}")
        if loss.needs_teacher and teacher is None:
            raise ValueError(
                "the loss uses the teacher but no teacher was given (backbone/teacher)"
            )
        if loss.needs_discriminator and discriminator is None:
            raise ValueError("the loss has an adversarial term but loss.discriminator is null")
        _check_taps(student, loss.student_taps, "student")
        _check_taps(teacher, loss.teacher_taps, "teacher")
        check_grad_share_every(grad_share_every, loss)
        self.automatic_optimization = False
        self.save_hyperparameters(
            ignore=[
                "student",
                "loss",
                "teacher",
                "discriminator",
                "optimizer",
                "d_optimizer",
                "scheduler",
                "d_scheduler",
                "pretrained_student",
                "student_build",
            ]
        )
        if average_weight is not None and pretrained_student is None:
            raise ValueError("module.average_weight needs the pre-trained student (student.ckpt)")
        # what export.py needs to rebuild and finish the deployed student from a run checkpoint
        self.pretrained_student = pretrained_student
        self.student_build = student_build or {}
        self.student, self.loss, self.discriminator = student, loss, discriminator
        self.teacher = freeze(teacher) if teacher is not None else None
        self.student_ema = ExponentialMovingAverage(student, ema_decay) if ema_decay else None
        self.optimizer_factory, self.d_optimizer_factory = optimizer, d_optimizer
        self.scheduler_factory, self.d_scheduler_factory = scheduler, d_scheduler
        self.teacher_identity = teacher_identity or {}
        self.val_sets = list(val_sets)
        self.last_validated_step: int | None = None
        self.nonfinite = NonFiniteGuard(max_nonfinite_steps)
        self.grad_share_history: list[dict] = []
        self.val_metrics = self._metrics(scale)
        # the network as trained, scored beside the deployed one when the two differ
        self.val_trained_metrics = self._metrics(scale) if self.deploys_differently else None
        self._deployed: list[nn.Module] = []  # a plain list: never a submodule, never saved
        self._apply_perf_options()

    def _apply_perf_options(self) -> None:
        """``perf.channels_last`` (training/perf.py): 4-D weights, kept by ``.to(device)``."""
        if self.hparams.channels_last:
            self.to(memory_format=torch.channels_last)

    def _compiled_networks(self) -> list[nn.Module]:
        networks = (self.student, self.teacher) if self.hparams.compile_backend else ()
        return [network for network in networks if network is not None]

    def on_train_start(self) -> None:
        # compiled while fitting only: the final validation, table and export run eagerly on
        # whole images of any size, where compiling would cost more than it saves
        for network in self._compiled_networks():
            perf.compile_in_place(network, self.hparams.compile_backend, self.hparams.compile_mode)

    def on_train_end(self) -> None:
        for network in self._compiled_networks():
            perf.uncompile(network)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return perf.batch_channels_last(batch) if self.hparams.channels_last else batch

    # ----- teacher kept out of checkpoints -------------------------------------------------
    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        return OrderedDict((k, v) for k, v in state.items() if not k.startswith("teacher."))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        state = dict(state_dict)
        if self.teacher is not None:
            state.update({f"teacher.{k}": v for k, v in self.teacher.state_dict().items()})
        return super().load_state_dict(state, strict=strict, assign=assign)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # dropout/BN of the teacher never switch to training
        return self

    # ----- optimisers ------------------------------------------------------------------------
    def generator_parameters(self) -> list[nn.Parameter]:
        """Student plus trainable loss-term parameters (heads, temperature); never D or teacher.

        With LoRA only the adapters of the student require grad, so only they are here.
        """
        params = [p for p in self.student.parameters() if p.requires_grad]
        return params + [p for p in self.loss.parameters() if p.requires_grad]

    def _generator_optimizer(self) -> torch.optim.Optimizer:
        groups = lora_param_groups(self.generator_parameters(), self.student)
        optimizer = self.optimizer_factory(groups)
        for group in optimizer.param_groups:  # LoRA+: B's learning rate is a multiple of A's
            group["lr"] *= group.get("lr_scale", 1.0)
        return optimizer

    def configure_optimizers(self):
        optimizers = [self._generator_optimizer()]
        factories = [self.scheduler_factory]
        if self.discriminator is not None:
            optimizers.append(self.d_optimizer_factory(self.discriminator.parameters()))
            factories.append(self.d_scheduler_factory)
        for name, opt in zip(("optimizer", "d_optimizer"), optimizers, strict=False):
            check_finite_lr(opt, name)
        schedulers = [
            {"scheduler": f(opt), "interval": "step"}
            for f, opt in zip(factories, optimizers, strict=True)
            if f is not None
        ]
        return optimizers, schedulers

    def _optimizers(self):
        opts = self.optimizers()
        return opts if isinstance(opts, list) else [opts]

    # ----- one iteration --------------------------------------------------------------------
    def _context(self, batch: dict) -> StepContext:
        lq, gt = batch["lq"], batch["gt"]
        sr_s, feats_s = _forward_with_taps(self.student, lq, self.loss.student_taps)
        ctx = StepContext(
            lq=lq,
            gt=gt,
            sr_s=sr_s,
            feats_s=feats_s,
            discriminator=self.discriminator,
            student=self.student,
            teacher=self.teacher,
        )
        # the teacher-output cache served the teacher's output for this crop (only ever attached
        # for losses that read nothing else of the teacher)
        if "sr_t" in batch and self.loss.reads_teacher_outputs_only:
            ctx.sr_t = batch["sr_t"]
        elif self.loss.needs_teacher:
            ctx.sr_t, ctx.feats_t = self.teacher_forward(lq, self.loss.teacher_taps)
        return ctx

    @torch.no_grad()
    def teacher_forward(
        self, lq: torch.Tensor, taps: Sequence[str] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The frozen teacher's output (and ``taps`` features) on ``lq``, without gradients; the
        one place the teacher runs during training, and what the teacher-output cache stores.
        With ``teacher_autocast`` the forward runs in that precision and returns float32."""
        mode = self.hparams.teacher_autocast
        if self.hparams.channels_last:
            lq = perf.channels_last(lq)
        with perf.teacher_autocast(mode, lq.device):
            sr_t, feats_t = _forward_with_taps(self.teacher, lq, taps)
        return perf.as_float32(sr_t, feats_t) if mode else (sr_t, feats_t)

    def _generator_step(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        """One optimizer step per group of ``loss.step_groups`` (one group unless configured);
        each later group sees the student as the previous group's step left it. Only the last
        step counts towards ``trainer.global_step``: an iteration is one step."""
        opt = self._optimizers()[0]
        self.toggle_optimizer(opt)  # D's parameters stop requiring grad during this step
        logs: dict[str, torch.Tensor] = {}
        totals, skipped, bad = [], False, []
        groups = self.loss.step_groups
        for index, names in enumerate(groups):
            if index:
                ctx = self._with_current_student(ctx, names)
            total, terms, group_skipped, group_bad = self._minimise_group(opt, ctx, names)
            skipped, bad = skipped or group_skipped, bad + group_bad
            totals.append(total)
            logs.update(terms)
            if index < len(groups) - 1:
                _step_without_counting(opt)  # a skipped step has no gradients: nothing moves
        self._record_nonfinite("g", skipped, bad)  # one record per iteration, any group's skip
        opt.step()
        self.untoggle_optimizer(opt)
        return {"total": torch.stack(totals).sum(), **logs}

    def _minimise_group(self, opt, ctx: StepContext, names: Sequence[str]) -> tuple:
        """Backward of one group's weighted terms (gradients checked, clipped), no step yet;
        the detached total and terms, whether the step is to be skipped and why."""
        # the released MCAD-KD code judges the student with D in eval mode (spectral norm's
        # power iteration then does not advance on the generator's forward passes)
        with _eval_mode(self.discriminator, self.hparams.d_eval_in_generator_step):
            total, terms = self.loss(ctx, names)
        self._record_grad_shares(terms)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(total)
        skipped, bad = self._check_finite(opt, {**terms, "total": total})
        if not skipped and self.hparams.grad_clip_norm:
            self.clip_gradients(
                opt, gradient_clip_val=self.hparams.grad_clip_norm, gradient_clip_algorithm="norm"
            )
        return total.detach(), {k: v.detach() for k, v in terms.items()}, skipped, bad

    def _with_current_student(self, ctx: StepContext, names: Sequence[str]) -> StepContext:
        """``ctx`` with the student's outputs recomputed after the previous group's step (the
        frozen teacher's do not change); kept when no term of the group reads them (terms that
        run the networks on inputs of their own say ``reads_student_output = False``)."""
        terms = [self.loss.terms[name] for name in names]
        if not any(getattr(term, "reads_student_output", True) for term in terms):
            return ctx
        sr_s, feats_s = _forward_with_taps(self.student, ctx.lq, self.loss.student_taps)
        return dataclasses.replace(ctx, sr_s=sr_s, feats_s=feats_s)

    def _record_grad_shares(self, terms: dict[str, torch.Tensor]) -> None:
        """Every ``grad_share_every`` steps: each term's gradient on the student next to the
        reconstruction term's (training/grad_share.py); per-process numbers under DDP."""
        every = self.hparams.grad_share_every
        # with step groups, only the group holding the reference term is compared with it
        if not every or self.global_step % every or REFERENCE not in terms:
            return
        params = [p for p in self.student.parameters() if p.requires_grad]
        weighted = {name: w * terms[name] for name, w in self.loss.weights.items() if name in terms}
        shares = grad_shares(weighted, params)
        if shares:
            logs = {f"train/grad_share/{k}": v for k, v in shares.items()}
            # straight to the loggers: self.log would repeat these values on every later step of
            # the epoch (Lightning keeps a step metric until the epoch ends)
            for logger in self.loggers:
                logger.log_metrics(logs, step=self.global_step)
            self.grad_share_history.append({"step": self.global_step, **shares})

    def _discriminator_step(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        opt = self._optimizers()[1]
        self.toggle_optimizer(opt)
        real, fake = self.discriminator(ctx.gt), self.discriminator(ctx.sr_s.detach())
        loss = discriminator_loss(real, fake, self.hparams.d_loss_scale)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self._finite_step("d", opt, {"loss_d": loss})
        _step_without_counting(opt)
        self.untoggle_optimizer(opt)
        return {
            "loss_d": loss.detach(),
            "d_real": torch.sigmoid(real).mean().detach(),
            "d_fake": torch.sigmoid(fake).mean().detach(),
        }

    # ----- non-finite guard --------------------------------------------------------------------
    def _finite_step(self, role: str, opt, losses: dict[str, torch.Tensor]) -> bool:
        """False (and the gradients dropped) when a loss or gradient is NaN/infinite."""
        skip, bad = self._check_finite(opt, losses)
        self._record_nonfinite(role, skip, bad)
        return not skip

    def _check_finite(self, opt, losses: dict[str, torch.Tensor]) -> tuple[bool, list[str]]:
        """Whether to skip the step (its gradients then dropped) for a NaN/infinite loss or
        gradient, and the culprits.

        Decided after the backward pass so that every DDP process takes the same decision from
        the synchronised gradients. With a GradScaler (16-bit mixed precision) the scaler skips
        overflowing steps itself and tunes its scale on them, so only the losses are checked
        and the gradients are left to it.
        """
        bad = [name for name, value in losses.items() if not torch.isfinite(value.detach()).all()]
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if not bad and scaler is None and not gradients_finite(opt):
            bad = ["gradient"]
        skip = self.trainer.strategy.reduce_boolean_decision(bool(bad), all=False)
        if skip and scaler is None:
            opt.zero_grad(set_to_none=True)  # the optimizer's step then moves nothing
        return skip, [b for b in bad if b != "total"] or bad

    def _record_nonfinite(self, role: str, skipped: bool, names: list[str]) -> None:
        for name in names if skipped else ():
            self.log(f"train/nonfinite/{role}/{name}", 1.0, on_step=True, on_epoch=False)
        self.nonfinite.record(role, skipped, names, self.global_step)

    def training_step(self, batch: dict, batch_idx: int) -> None:
        ctx = self._context(batch)
        d_logs: dict[str, torch.Tensor] = {}
        if self.discriminator is not None and self.hparams.step_order == "d_then_g":
            d_logs = self._discriminator_step(ctx)
        g_logs = self._generator_step(ctx)
        if self.discriminator is not None and self.hparams.step_order == "g_then_d":
            d_logs = self._discriminator_step(ctx)
        for scheduler in self._schedulers():
            scheduler.step()
        if self.student_ema is not None:
            self.student_ema.update(self.student)
        self._log_train(g_logs, d_logs)

    def _schedulers(self) -> list:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return []
        return schedulers if isinstance(schedulers, list) else [schedulers]

    def _log_train(self, g_logs: dict, d_logs: dict) -> None:
        logs = {f"train/loss/{k}": v for k, v in g_logs.items()}
        logs.update({f"train/{k}": v for k, v in d_logs.items()})
        cont = self.loss.terms["cont"] if "cont" in self.loss.terms else None
        if hasattr(cont, "temperature"):  # MCAD's InfoNCE; CSD's ratio has no temperature
            logs["train/tau"] = cont.temperature().detach()
        for role, opt in zip("gd", self._optimizers(), strict=False):
            logs[f"train/lr/{role}"] = opt.param_groups[0]["lr"]
            logs[f"train/skipped/{role}"] = float(self.nonfinite.skipped[role])
        self.log_dict(logs, prog_bar=False, on_step=True, on_epoch=False)
        self.log("loss", g_logs["total"], prog_bar=True, on_step=True, on_epoch=False, logger=False)

    # ----- validation ------------------------------------------------------------------------
    @property
    def eval_student(self) -> nn.Module:
        """The network as trained that is deployed: the EMA copy when EMA is on (validated as
        ``val/`` unless adapters or averaging make the deployed network differ from it)."""
        return self.student_ema.module if self.student_ema is not None else self.student

    def _metrics(self, scale: int) -> nn.ModuleDict:
        return nn.ModuleDict(
            {
                name: nn.ModuleDict({"psnr_y": PSNR(scale), "ssim_y": SSIM(scale)})
                for name in self.val_sets
            }
        )

    @property
    def deploys_differently(self) -> bool:
        """Whether the shipped network is not the trained one: adapters to merge, or averaging."""
        return bool(lora_modules(self.student)) or self.hparams.average_weight is not None

    def validation_networks(self) -> dict[str, tuple[nn.Module, nn.ModuleDict]]:
        """Log prefix -> (network, its metrics): ``val`` the deployed network (what export.py
        writes) and, when the two differ, the validated network as trained: ``val_ema`` (the
        EMA copy) when EMA is on, ``val_trained`` (the live student) otherwise."""
        if not self.deploys_differently:
            return {"val": (self.eval_student, self.val_metrics)}
        if not self._deployed:
            self._deployed.append(self.export_student())
        return {
            "val": (self._deployed[0], self.val_metrics),
            "val_ema" if self.student_ema is not None else "val_trained": (
                self.eval_student,
                self.val_trained_metrics,
            ),
        }

    def on_validation_epoch_start(self) -> None:
        self._deployed.clear()  # merged from this epoch's weights, once for all batches
        self.validation_networks()

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.val_sets[dataloader_idx]
        for prefix, (network, metrics) in self.validation_networks().items():
            sr = self._validated(network)(batch["lq"]).float()
            for key, metric in metrics[name].items():
                metric.update(sr, batch["gt"].float(), batch.get("gray"))
                self.log(
                    f"{prefix}/{name}/{key}",
                    metric,
                    on_step=False,
                    on_epoch=True,
                    add_dataloader_idx=False,
                    prog_bar=(prefix == "val" and key == "psnr_y"),
                )

    def _validated(self, network: nn.Module) -> nn.Module:
        """``network`` as validation runs it: behind the x8 self-ensemble when
        ``val_self_ensemble`` is on."""
        return SelfEnsemble(network) if self.hparams.val_self_ensemble else network

    def on_validation_epoch_end(self) -> None:
        self.last_validated_step = self.global_step
        self._deployed.clear()

    # ----- checkpoints -------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["teacher"] = dict(self.teacher_identity)
        checkpoint["rng_states"] = capture_rng_state()
        checkpoint["student_build"] = dict(self.student_build)
        if self.pretrained_student is not None:
            checkpoint["pretrained_student"] = dict(self.pretrained_student)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng_states" in checkpoint:
            restore_rng_state(checkpoint["rng_states"])

    def export_student(self) -> nn.Module:
        """A standalone copy of the network to deploy (EMA when enabled): adapters merged,
        averaged with the pre-trained weights when ``average_weight`` is set, blocks folded."""
        model = copy.deepcopy(self.eval_student).eval()
        return deployable(model, self.pretrained_student, self.hparams.average_weight)
