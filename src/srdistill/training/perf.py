"""Speed options of a training run (``perf:`` in conf/train.yaml); each is off by default.

- ``channels_last``: every 4-D weight of the networks and every 4-D tensor of a batch in NHWC
  memory order, the layout tensor-core convolutions read without transposing.
- ``compile``: ``torch.compile`` of the student and the teacher *in place* (``Module.compile``)
  for the training loop, so no ``OptimizedModule`` wrapper sits between the module and its
  weights: state-dict keys, run checkpoints and exported students are those of an uncompiled run
  (no ``_orig_mod.``), and deep copies (EMA, the exported student) are plain eager modules.
- ``teacher_autocast``: the frozen teacher's forward under bf16 autocast, its outputs cast back
  to float32 so that every loss sees float32.
- ``pin_memory`` / ``persistent_workers``: the training loader's, ``auto`` keeping the defaults
  (pinned when a CUDA GPU is present, persistent when there are workers).

``channels_last`` and ``compile`` reach a run as the ``SpeedOptions`` callback; the teacher's
autocast is the module's (it changes how the teacher runs, in training/teacher.py).
"""

from __future__ import annotations

import functools
from contextlib import nullcontext

import torch
from lightning import Callback
from omegaconf import DictConfig, OmegaConf
from torch import nn

# null keeps the teacher in the trainer's precision
TEACHER_AUTOCAST_DTYPES = {"bf16": torch.bfloat16}
AUTO = "auto"


def channels_last(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in NHWC memory order when it is a 4-D image batch; anything else unchanged."""
    if isinstance(tensor, torch.Tensor) and tensor.dim() == 4:
        return tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def batch_channels_last(batch):
    """Every 4-D tensor of a batch dict (``lq``, ``gt``, a cached ``sr_t``) in NHWC order."""
    if isinstance(batch, dict):
        return {key: channels_last(value) for key, value in batch.items()}
    return batch


def teacher_autocast(mode: str | None, device: torch.device):
    """Autocast to ``mode``'s dtype inside the block; nothing when ``mode`` is null."""
    if mode is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=TEACHER_AUTOCAST_DTYPES[mode])


def as_float32(
    sr: torch.Tensor, feats: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The teacher's output and features in float32, whatever precision computed them."""
    return sr.float(), {name: f.float() for name, f in feats.items()}


def compile_in_place(model: nn.Module, backend: str, mode: str | None = None) -> nn.Module:
    """``torch.compile`` ``model(x)`` and, for tappable backbones, ``forward_intermediates``.

    In place rather than ``torch.compile(model)``: the wrapper that returns would prefix every
    weight with ``_orig_mod.`` and break the checkpoint loaders. The tapped forward is a
    ``partial`` over the model, so a deep copy (EMA, export) binds to the copy, not the original.
    Taps by module path hook a module for one call (models/taps.py); dynamo skips its guards on
    module hooks by default and would replay a graph traced without them, so both compiled
    calls keep those guards: one graph per set of hooked modules, reused every step.
    """

    def seeing_hooks(compiled):
        @functools.wraps(compiled)
        def call(*args, **kwargs):
            with torch._dynamo.config.patch(skip_nnmodule_hook_guards=False):
                return compiled(*args, **kwargs)

        return call

    # what Module.compile does, wrapped; __getstate__ drops it, so deep copies run eagerly
    model._compiled_call_impl = seeing_hooks(
        torch.compile(model._call_impl, backend=backend, mode=mode)
    )
    tapped = getattr(type(model), "forward_intermediates", None)
    if tapped is not None:
        compiled = seeing_hooks(torch.compile(tapped, backend=backend, mode=mode))
        model.forward_intermediates = functools.partial(compiled, model)
    return model


def uncompile(model: nn.Module) -> nn.Module:
    """Undo ``compile_in_place``: ``model`` runs eagerly again."""
    model._compiled_call_impl = None  # None is the eager default
    model.__dict__.pop("forward_intermediates", None)
    return model


# ----- config checks (train.py preflight: one line, before any data is read) -----------------
def _switch(cfg: DictConfig, option: str) -> bool:
    value = OmegaConf.select(cfg, option)
    if not isinstance(value, bool):
        raise ValueError(f"{option}={value!r} is not a switch: give {option}=true or false")
    return value


def _auto_or_switch(cfg: DictConfig, option: str) -> str | bool:
    value = OmegaConf.select(cfg, option)
    if value != AUTO and not isinstance(value, bool):
        raise ValueError(f"{option}={value!r}: give {option}=auto, true or false")
    return value


def _check_compile(cfg: DictConfig) -> None:
    backend, mode = cfg.perf.get("compile_backend"), cfg.perf.get("compile_mode")
    from torch._dynamo import list_backends

    backends = list_backends(exclude_tags=())
    if backend not in backends:
        common = [b for b in ("inductor", "aot_eager", "eager") if b in backends]
        raise ValueError(
            f"perf.compile_backend={backend!r} is not a torch.compile backend; give one of "
            f"{', '.join(common)}"
        )
    if mode is None:
        return
    if backend != "inductor":
        raise ValueError(
            f"perf.compile_mode={mode!r} applies to the inductor backend only; set "
            f"perf.compile_mode=null for perf.compile_backend={backend}"
        )
    from torch._inductor import list_mode_options

    modes = list(list_mode_options())
    if mode not in modes:
        raise ValueError(f"perf.compile_mode={mode!r}: give null or one of {', '.join(modes)}")


def _check_teacher_autocast(cfg: DictConfig) -> None:
    mode = cfg.perf.get("teacher_autocast")
    if mode is not None and mode not in TEACHER_AUTOCAST_DTYPES:
        raise ValueError(
            f"perf.teacher_autocast={mode!r}: give null (the trainer's precision) or "
            f"{' or '.join(TEACHER_AUTOCAST_DTYPES)}"
        )
    on_gpu = str(cfg.trainer.get("accelerator", "auto")) in ("gpu", "cuda", "auto")
    if mode == "bf16" and on_gpu and torch.cuda.is_available() and not _cuda_bf16():
        raise ValueError(
            "perf.teacher_autocast=bf16: this GPU has no bf16 support; set "
            "perf.teacher_autocast=null"
        )


def _cuda_bf16() -> bool:
    return torch.cuda.is_bf16_supported(including_emulation=False)


def check_perf_options(cfg: DictConfig) -> None:
    """Every ``perf.*`` value is one the run can use; a ValueError naming the option if not."""
    if cfg.get("perf") is None:
        return
    _switch(cfg, "perf.channels_last")
    if _switch(cfg, "perf.compile"):
        _check_compile(cfg)
    _check_teacher_autocast(cfg)
    _auto_or_switch(cfg, "perf.pin_memory")
    if _auto_or_switch(cfg, "perf.persistent_workers") is True and not cfg.num_workers:
        raise ValueError(
            f"perf.persistent_workers=true keeps loader workers alive, but num_workers="
            f"{cfg.num_workers}; raise num_workers or set perf.persistent_workers=auto"
        )


def module_options(perf: DictConfig | None) -> dict:
    """The ``perf`` option DistillationModule takes (plain values, as checkpoints keep them);
    the others are the ``SpeedOptions`` callback's (training/perf.py)."""
    return {} if perf is None else {"teacher_autocast": perf.get("teacher_autocast")}


def is_channels_last(network: nn.Module | None) -> bool:
    """Whether ``network``'s first 4-D weight is in NHWC order (``perf.channels_last``)."""
    weight = next((p for p in network.parameters() if p.dim() == 4), None) if network else None
    return (
        weight is not None
        and weight.is_contiguous(memory_format=torch.channels_last)
        and (not weight.is_contiguous())
    )


# ----- the callback that applies channels_last and compile to a run ---------------------------
class SpeedOptions(Callback):
    """NHWC weights and batches (``channels_last``); the student and teacher compiled in place
    while fitting (``compile_backend``, ``compile_mode``), eager again afterwards."""

    def __init__(
        self,
        channels_last: bool = False,
        compile_backend: str | None = None,
        compile_mode: str | None = None,
    ) -> None:
        self.channels_last = channels_last
        self.compile_backend, self.compile_mode = compile_backend, compile_mode

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.channels_last:  # 4-D weights in NHWC order; .to(device) keeps the layout
            pl_module.to(memory_format=torch.channels_last)

    def _compiled(self, pl_module) -> list[nn.Module]:
        networks = (pl_module.student, pl_module.teacher) if self.compile_backend else ()
        return [network for network in networks if network is not None]

    def on_train_start(self, trainer, pl_module) -> None:
        # compiled while fitting only: the final validation, table and export run eagerly on
        # whole images of any size, where compiling would cost more than it saves
        for network in self._compiled(pl_module):
            compile_in_place(network, self.compile_backend, self.compile_mode)

    def on_train_end(self, trainer, pl_module) -> None:
        for network in self._compiled(pl_module):
            uncompile(network)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._to_channels_last(batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dl_idx=0) -> None:
        self._to_channels_last(batch)

    def _to_channels_last(self, batch) -> None:
        if self.channels_last and isinstance(batch, dict):
            batch.update(batch_channels_last(batch))  # in place: the step sees this dict


def speed_callbacks(perf_cfg: DictConfig | None) -> list[Callback]:
    """``[SpeedOptions]`` when ``perf.channels_last`` or ``perf.compile`` is on, else []."""
    if perf_cfg is None or not (perf_cfg.channels_last or perf_cfg.compile):
        return []
    backend = perf_cfg.compile_backend if perf_cfg.compile else None
    mode = perf_cfg.get("compile_mode") if perf_cfg.compile else None
    return [SpeedOptions(perf_cfg.channels_last, backend, mode)]
