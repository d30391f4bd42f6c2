"""What a run's numbers depend on besides its code, config and seed: the library versions and
the hardware. The same code gives bit-identical weights only with the same ones (and the same
thread count); results.json records them so that two runs can be told apart."""

from __future__ import annotations

import platform
from importlib import metadata

import torch

LIBRARIES = ("torch", "lightning", "numpy")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def run_environment() -> dict:
    """Python and library versions, the CPU's architecture and the vector instructions torch
    uses on it, and the GPU's name when there is one."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "python": platform.python_version(),
        **{package: _version(package) for package in LIBRARIES},
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "gpu": gpu,
    }
