"""DistillationModule: a frozen teacher, a learning student, optional discriminator.

Manual optimisation: each iteration is a generator step (student + loss-term parameters such as
heads and temperature; ``loss.step_groups``: one optimizer step per group, DUKD) and, with a
discriminator, a D step on ``L_D`` with the student output detached, in ``step_order``. The
teacher is frozen, in eval mode, never optimised, never in run checkpoints (only its identity);
a batch's ``sr_t`` (the teacher-output cache) stands in for its forward. The rest: training/."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from lightning import LightningModule
from torch import nn

from srdistill.lora.inject import lora_optimizer
from srdistill.losses.adversarial import discriminator_loss
from srdistill.losses.combine import WeightedLoss
from srdistill.losses.context import StepContext
from srdistill.models.taps import forward_with_taps
from srdistill.training import checkpointing, deployed
from srdistill.training.balance import LossBalance
from srdistill.training.ema import ExponentialMovingAverage
from srdistill.training.grad_share import GradShareProbe
from srdistill.training.nonfinite import NonFiniteGuard, check_finite_lr, skip_decision
from srdistill.training.steps import eval_mode, freeze, step_without_counting
from srdistill.training.teacher import run_frozen_teacher

STEP_ORDERS = ("g_then_d", "d_then_g")
NOT_HYPERPARAMETERS = ["student", "loss", "teacher", "discriminator", "optimizer", "d_optimizer"]
NOT_HYPERPARAMETERS += ["scheduler", "d_scheduler", "pretrained_student", "build_record"]


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
        build_record: dict | None = None,
        max_nonfinite_steps: int | None = 5,
        d_eval_in_generator_step: bool = False,
        grad_share_every: int | None = None,
        balance: dict | None = None,
        val_self_ensemble: bool = False,
        teacher_autocast: str | None = None,
    ) -> None:
        super().__init__()
        if step_order not in STEP_ORDERS:
            raise ValueError(f"step_order must be one of {STEP_ORDERS}, got {step_order!r}")
        loss.check_networks(student, teacher, discriminator)
        if average_weight is not None and pretrained_student is None:
            raise ValueError("module.average_weight needs the pre-trained student (student.ckpt)")
        self.automatic_optimization = False
        self.save_hyperparameters(ignore=NOT_HYPERPARAMETERS)
        # what export rebuilds and finishes the deployed student from, in every run checkpoint
        self.pretrained_student, self.build_record = pretrained_student, build_record or {}
        self.student, self.loss, self.discriminator = student, loss, discriminator
        self.teacher = freeze(teacher) if teacher is not None else None
        self.student_ema = ExponentialMovingAverage(student, ema_decay) if ema_decay else None
        self.optimizer_factory, self.d_optimizer_factory = optimizer, d_optimizer
        self.scheduler_factory, self.d_scheduler_factory = scheduler, d_scheduler
        self.teacher_identity, self.val_sets = teacher_identity or {}, list(val_sets)
        self.nonfinite = NonFiniteGuard(max_nonfinite_steps)
        self.grad_share = GradShareProbe(grad_share_every, loss)
        self.balance = LossBalance(balance, loss)
        # the deployed network's metrics, and the network as trained's when the two differ
        differ = deployed.deploys_differently(student, average_weight)
        self.val_metrics = deployed.validation_metrics(self.val_sets, scale)
        self.val_trained_metrics = deployed.validation_metrics(self.val_sets, scale, differ)
        self.validation = deployed.ValidationNetworks(self)

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

    def teacher_forward(self, lq: torch.Tensor, taps: Sequence[str] = ()) -> tuple:
        """The frozen teacher's output and ``taps`` features, without gradients: the one place
        the teacher runs in training, and what the teacher-output cache stores."""
        return run_frozen_teacher(self.teacher, lq, taps, self.hparams.teacher_autocast)

    def generator_parameters(self) -> list[nn.Parameter]:
        """The student's trainable parameters (only the adapters with LoRA) and the loss's."""
        params = [p for p in self.student.parameters() if p.requires_grad]
        return params + [p for p in self.loss.parameters() if p.requires_grad]

    def configure_optimizers(self):
        params, student = self.generator_parameters(), self.student
        optimizers = [lora_optimizer(self.optimizer_factory, params, student)]
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

    def _optimizers(self) -> list:
        opts = self.optimizers()
        return opts if isinstance(opts, list) else [opts]

    def training_step(self, batch: dict, batch_idx: int) -> None:
        ctx = self._context(batch)
        d_logs: dict[str, torch.Tensor] = {}
        if self.discriminator is not None and self.hparams.step_order == "d_then_g":
            d_logs = self._discriminator_step(ctx)
        g_logs = self._generator_step(ctx)
        if self.discriminator is not None and self.hparams.step_order == "g_then_d":
            d_logs = self._discriminator_step(ctx)
        schedulers = self.lr_schedulers() or []
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()
        if self.student_ema is not None:
            self.student_ema.update(self.student)
        self._log_train(g_logs, d_logs)

    def _context(self, batch: dict) -> StepContext:
        lq, gt = batch["lq"], batch["gt"]
        sr_s, feats_s = forward_with_taps(self.student, lq, self.loss.student_taps)
        ctx = StepContext(lq=lq, gt=gt, sr_s=sr_s, feats_s=feats_s, student=self.student)
        ctx.discriminator, ctx.teacher = self.discriminator, self.teacher
        # the teacher-output cache's crop stands in for the teacher (loss reads only its output)
        if "sr_t" in batch and self.loss.reads_teacher_outputs_only:
            ctx.sr_t = batch["sr_t"]
        elif self.loss.needs_teacher:
            ctx.sr_t, ctx.feats_t = self.teacher_forward(lq, self.loss.teacher_taps)
        return ctx

    def _generator_step(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        """One optimizer step per group of ``loss.step_groups``; each later group sees the
        student as the previous group's step left it. Only the last step counts towards
        ``trainer.global_step``: an iteration is one step."""
        opt = self._optimizers()[0]
        self.toggle_optimizer(opt)  # D's parameters stop requiring grad during this step
        logs, totals, skipped, bad = {}, [], False, []
        for index, names in enumerate(self.loss.step_groups):
            if index and self.loss.reads_student_output(names):
                sr_s, feats_s = forward_with_taps(self.student, ctx.lq, self.loss.student_taps)
                ctx = dataclasses.replace(ctx, sr_s=sr_s, feats_s=feats_s)
            total, terms, group_skipped, group_bad = self._minimise_group(opt, ctx, names)
            skipped, bad = skipped or group_skipped, bad + group_bad
            totals.append(total)
            logs.update(terms)
            if index < len(self.loss.step_groups) - 1:
                step_without_counting(opt)  # a skipped step has no gradients: nothing moves
        self._record_nonfinite("g", skipped, bad)  # one record per iteration, any group's skip
        opt.step()
        self.untoggle_optimizer(opt)
        return {"total": torch.stack(totals).sum(), **logs}

    def _minimise_group(self, opt, ctx: StepContext, names: Sequence[str]) -> tuple:
        """Backward of one group's weighted terms (gradients checked, clipped), no step yet;
        the detached total and terms, whether the step is to be skipped and why."""
        with eval_mode(self.discriminator, self.hparams.d_eval_in_generator_step):
            total, terms = self.loss(ctx, names)
        params = [p for p in self.student.parameters() if p.requires_grad]
        self.grad_share.record(self.global_step, terms, params, self.loggers)
        self.balance.record(self.global_step, terms, params, self)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(total)
        skipped, bad = skip_decision(self.trainer, opt, {**terms, "total": total})
        if not skipped and self.hparams.grad_clip_norm:
            self.clip_gradients(
                opt, gradient_clip_val=self.hparams.grad_clip_norm, gradient_clip_algorithm="norm"
            )
        return total.detach(), {k: v.detach() for k, v in terms.items()}, skipped, bad

    def _discriminator_step(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        opt = self._optimizers()[1]
        self.toggle_optimizer(opt)
        real, fake = self.discriminator(ctx.gt), self.discriminator(ctx.sr_s.detach())
        loss = discriminator_loss(real, fake, self.hparams.d_loss_scale)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self._record_nonfinite("d", *skip_decision(self.trainer, opt, {"loss_d": loss}))
        step_without_counting(opt)
        self.untoggle_optimizer(opt)
        d_real, d_fake = torch.sigmoid(real).mean(), torch.sigmoid(fake).mean()
        return {"loss_d": loss.detach(), "d_real": d_real.detach(), "d_fake": d_fake.detach()}

    def _record_nonfinite(self, role: str, skipped: bool, names: list[str]) -> None:
        self.nonfinite.record(role, skipped, names, self.global_step, self.log)

    def _log_train(self, g_logs: dict, d_logs: dict) -> None:
        logs = {f"train/loss/{k}": v for k, v in g_logs.items()}
        logs.update({f"train/{k}": v for k, v in {**d_logs, **self.loss.step_metrics()}.items()})
        for role, opt in zip("gd", self._optimizers(), strict=False):
            logs[f"train/lr/{role}"] = opt.param_groups[0]["lr"]
            logs[f"train/skipped/{role}"] = float(self.nonfinite.skipped[role])
        self.log_dict(logs, prog_bar=False, on_step=True, on_epoch=False)
        self.log("loss", g_logs["total"], prog_bar=True, on_step=True, on_epoch=False, logger=False)

    @property
    def eval_student(self) -> nn.Module:
        """The network as trained that is deployed: the EMA copy when EMA is on."""
        return self.student_ema.module if self.student_ema is not None else self.student

    def export_student(self) -> nn.Module:
        """A standalone copy of the network to deploy (EMA when enabled): adapters merged,
        averaged with the pre-trained weights when ``average_weight`` is set, blocks folded."""
        return deployed.deployed_copy(self)

    def on_validation_epoch_start(self) -> None:
        self.validation.start_epoch()

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.validation.step(batch, self.val_sets[dataloader_idx])

    def on_validation_epoch_end(self) -> None:
        self.validation.end_epoch(self.global_step)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint.update(checkpointing.run_records(self))

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        checkpointing.restore_run_records(self, checkpoint)
