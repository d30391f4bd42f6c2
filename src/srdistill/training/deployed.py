"""Validating what ships: the deployed network, and the network as trained when they differ.

``val/<set>/...`` scores the deployed network (``deployed_copy``: the EMA copy when EMA is on,
adapters merged, averaged with the pre-trained weights, re-parameterisable blocks folded; built
once per validation epoch). When adapters or averaging make it differ from the network as
trained, that one is scored too: ``val_ema/`` (EMA on) or ``val_trained/`` (EMA off). Without
either the two would be one network and only ``val/`` is logged.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import nn

from srdistill.eval.ensemble import SelfEnsemble
from srdistill.lora.inject import lora_modules
from srdistill.lora.merge import deployable
from srdistill.metrics.sr import PSNR, SSIM


def validation_metrics(
    val_sets: Sequence[str], scale: int, needed: bool = True
) -> nn.ModuleDict | None:
    """``{set: {"psnr_y": .., "ssim_y": ..}}``, the papers' Y-channel metrics, border = scale;
    None when not ``needed``."""
    if not needed:
        return None
    return nn.ModuleDict(
        {name: nn.ModuleDict({"psnr_y": PSNR(scale), "ssim_y": SSIM(scale)}) for name in val_sets}
    )


def deploys_differently(student: nn.Module, average_weight: float | None) -> bool:
    """Whether the shipped network is not the trained one: adapters to merge, or averaging."""
    return bool(lora_modules(student)) or average_weight is not None


def deployed_copy(module) -> nn.Module:
    """A standalone copy of ``module``'s network to deploy, in eval mode."""
    model = copy.deepcopy(module.eval_student).eval()
    return deployable(model, module.pretrained_student, module.hparams.average_weight)


class ValidationNetworks:
    """The networks a DistillationModule validates and their metrics, per log prefix."""

    def __init__(self, module) -> None:
        self.module = module
        self.last_step: int | None = None  # the step the last validation ran at
        self._deployed: list[nn.Module] = []  # never a submodule: never saved, never moved

    def networks(self) -> dict[str, tuple[nn.Module, nn.ModuleDict]]:
        """Log prefix -> (network, its metrics)."""
        module = self.module
        if not deploys_differently(module.student, module.hparams.average_weight):
            return {"val": (module.eval_student, module.val_metrics)}
        if not self._deployed:
            self._deployed.append(module.export_student())
        trained = "val_ema" if module.student_ema is not None else "val_trained"
        return {
            "val": (self._deployed[0], module.val_metrics),
            trained: (module.eval_student, module.val_trained_metrics),
        }

    def start_epoch(self) -> None:
        self._deployed.clear()  # merged from this epoch's weights, once for all batches
        self.networks()

    def step(self, batch: dict, set_name: str) -> None:
        for prefix, (network, metrics) in self.networks().items():
            if self.module.hparams.val_self_ensemble:
                network = SelfEnsemble(network)  # x8 geometric self-ensemble (DUKD's protocol)
            sr = network(batch["lq"]).float()
            for key, metric in metrics[set_name].items():
                metric.update(sr, batch["gt"].float(), batch.get("gray"))
                self.module.log(
                    f"{prefix}/{set_name}/{key}",
                    metric,
                    on_step=False,
                    on_epoch=True,
                    add_dataloader_idx=False,
                    prog_bar=(prefix == "val" and key == "psnr_y"),
                )

    def end_epoch(self, step: int) -> None:
        self.last_step = step
        self._deployed.clear()
