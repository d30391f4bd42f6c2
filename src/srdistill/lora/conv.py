"""ConvLoRA: a frozen ``nn.Conv2d`` plus a trainable low-rank update of its kernel.

For a kernel ``W`` of shape ``(C_out, C_in/groups, k, k)`` the update is
``delta_W = reshape(B @ A, W.shape) * scaling`` with ``A: (r*k, C_in/groups*k)`` and
``B: (C_out*k, r*k)`` (Aleem et al. 2024, the LoRA reference code's ``ConvLoRA`` form). ``B``
starts at zero, so an adapted network computes exactly what the pre-trained one does until the
first update. The class subclasses ``nn.Conv2d`` so the frozen ``weight``/``bias`` keep their key
names and a pre-trained state dict still loads into an adapted network.
"""

from __future__ import annotations

import math

import torch
from torch import nn

SCALINGS = ("lora", "rslora")
A_INITS = ("kaiming_uniform", "gaussian")


def lora_scaling(rank: int, alpha: float, scaling: str = "lora") -> float:
    """``alpha / r`` (LoRA) or ``alpha / sqrt(r)`` (rsLoRA, Kalajdzievski 2023).

    >>> lora_scaling(4, 8), lora_scaling(4, 8, "rslora")
    (2.0, 4.0)
    """
    if scaling not in SCALINGS:
        raise ValueError(f"lora scaling must be one of {SCALINGS}, got {scaling!r}")
    return alpha / rank if scaling == "lora" else alpha / math.sqrt(rank)


def conv_hyperparameters(conv: nn.Conv2d) -> tuple[tuple, dict]:
    """The constructor arguments that rebuild ``conv`` (shape, geometry, device, dtype)."""
    args = (conv.in_channels, conv.out_channels, conv.kernel_size)
    kwargs = {
        "stride": conv.stride,
        "padding": conv.padding,
        "dilation": conv.dilation,
        "groups": conv.groups,
        "bias": conv.bias is not None,
        "padding_mode": conv.padding_mode,
        "device": conv.weight.device,
        "dtype": conv.weight.dtype,
    }
    return args, kwargs


class LoRAConv2d(nn.Conv2d):
    """A conv whose ``weight`` and ``bias`` are frozen and whose kernel is adapted by ``B @ A``.

    ``b_lr_ratio`` is read by the optimiser set-up (LoRA+: ``B`` learns ``ratio`` times faster).
    """

    def __init__(
        self,
        *args,
        rank: int,
        alpha: float | None = None,
        scaling: str = "lora",
        a_init: str = "kaiming_uniform",
        train_a: bool = True,
        train_bias: bool = False,
        b_lr_ratio: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        kh, kw = self.kernel_size
        if kh != kw:
            raise ValueError(f"ConvLoRA needs a square kernel, got {self.kernel_size}")
        if rank < 1:
            raise ValueError(f"lora rank must be a positive integer, got {rank}")
        if a_init not in A_INITS:
            raise ValueError(f"lora a_init must be one of {A_INITS}, got {a_init!r}")
        self.rank, self.alpha = rank, float(alpha if alpha is not None else 2 * rank)
        self.scaling = lora_scaling(rank, self.alpha, scaling)
        self.a_init, self.b_lr_ratio = a_init, float(b_lr_ratio)
        fan_in = self.in_channels // self.groups
        self.lora_A = nn.Parameter(self.weight.new_zeros(rank * kh, fan_in * kh))
        self.lora_B = nn.Parameter(self.weight.new_zeros(self.out_channels * kh, rank * kh))
        self.reset_lora_parameters()
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(train_bias)
        self.lora_A.requires_grad_(train_a)
        self._unmerged_weight: torch.Tensor | None = None

    @classmethod
    def wrap(cls, conv: nn.Conv2d, **lora_kwargs) -> LoRAConv2d:
        """An adapted copy of ``conv`` (same hyper-parameters, same weights, same device)."""
        args, kwargs = conv_hyperparameters(conv)
        adapted = cls(*args, **kwargs, **lora_kwargs)
        with torch.no_grad():
            adapted.weight.copy_(conv.weight)
            if conv.bias is not None:
                adapted.bias.copy_(conv.bias)
        return adapted

    @torch.no_grad()
    def reset_lora_parameters(self) -> None:
        if self.a_init == "kaiming_uniform":  # the released code and the LoRA reference
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        else:  # the paper's "Gaussian"; std 1/r as in PEFT
            nn.init.normal_(self.lora_A, std=1.0 / self.rank)
        nn.init.zeros_(self.lora_B)

    @property
    def merged(self) -> bool:
        return self._unmerged_weight is not None

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A).view(self.weight.shape) * self.scaling

    def effective_weight(self) -> torch.Tensor:
        """The kernel this conv applies (frozen weight plus the update unless merged)."""
        return self.weight if self.merged else self.weight + self.delta_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into ``weight`` (forward unchanged; the adapters stop being used)."""
        if self.merged:
            return
        self._unmerged_weight = self.weight.detach().clone()
        self.weight.add_(self.delta_weight())

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo ``merge`` bit for bit: the pre-merge kernel was kept, not recomputed."""
        if not self.merged:
            return
        self.weight.copy_(self._unmerged_weight)
        self._unmerged_weight = None

    @torch.no_grad()
    def to_conv2d(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` computing what this adapted conv computes (the deployed layer)."""
        args, kwargs = conv_hyperparameters(self)
        plain = nn.Conv2d(*args, **kwargs)
        plain.weight.copy_(self.effective_weight())
        if self.bias is not None:
            plain.bias.copy_(self.bias)
        return plain

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, alpha={self.alpha:g}"
