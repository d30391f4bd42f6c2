"""The deployable student of a training run, as a plain state dict in its architecture's keys.

A run checkpoint records how its student was built (architecture config, LoRA targets, average
weight) and, when averaging, the pre-trained weights. Rebuilding from that record, loading the
trained (EMA) weights, merging the adapters, averaging and folding re-parameterisable blocks gives
the network a plain implementation of the architecture loads with ``strict=True``: for SPAN, the
slim ``eval_conv`` format of the released checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from hydra.utils import instantiate
from torch import nn

from srdistill.lora.merge import deployable
from srdistill.models.checkpoint import CheckpointError, student_weights

EXPORT_FORMATS = ("slim", "safetensors")


def read_run_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; give ckpt=<run>/checkpoints/...")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any reader failure is one line for the user
        raise CheckpointError(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}") from err
    if not isinstance(raw, Mapping) or "student_build" not in raw or "state_dict" not in raw:
        raise CheckpointError(
            f"{path} is not a srdistill training checkpoint (no student_build); export takes "
            "the last.ckpt / best-*.ckpt of a train.py run"
        )
    return dict(raw)


def deployed_student(path: str | Path, use_ema: bool = True) -> nn.Module:
    """Rebuild the run's student and finish it as training's final evaluation did."""
    ckpt = read_run_checkpoint(path)
    build = ckpt["student_build"]
    model = instantiate(build["arch"])
    if build.get("lora"):
        instantiate(build["lora"]).apply(model)
    model.load_state_dict(student_weights(ckpt["state_dict"], use_ema, path), strict=True)
    return deployable(model, ckpt.get("pretrained_student"), build.get("average_weight")).eval()


def write_state_dict(model: nn.Module, out: str | Path, fmt: str = "slim") -> Path:
    """Write ``model``'s weights as a plain tensor dict (``torch.save``) or safetensors."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {EXPORT_FORMATS}, got {fmt!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(out))
    else:
        torch.save(state, out)
    return out
