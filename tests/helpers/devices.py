"""Tests of a device path run on the CPU and, where CUDA is present, on the GPU.

``on_devices()`` parametrises a test by device: ``cpu`` always, ``cuda`` marked ``gpu`` (and
``slow``, so that ``make test`` stays a CPU suite) and skipped with its reason on a machine with
fewer GPUs than it needs. ``pytest -m gpu`` on a CUDA machine runs exactly the GPU variants.
"""

from __future__ import annotations

import pytest
import torch

# the trainer config of each device, beside experiment=smoke (which picks trainer=cpu)
TRAINER = {"cpu": "trainer=cpu", "cuda": "trainer=gpu"}


def on_devices(*, cpu_marks=(), min_gpus: int = 1) -> pytest.MarkDecorator:
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    needs = f"needs {min_gpus} CUDA GPU{'s' if min_gpus > 1 else ''}; this machine has {gpus}"
    cuda_marks = [
        pytest.mark.gpu,
        pytest.mark.slow,
        pytest.mark.skipif(gpus < min_gpus, reason=needs),
    ]
    return pytest.mark.parametrize(
        "device",
        [
            pytest.param("cpu", marks=cpu_marks, id="cpu"),
            pytest.param("cuda", marks=cuda_marks, id="cuda"),
        ],
    )
