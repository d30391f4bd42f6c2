"""``perf:`` in conf/train.yaml: checked values, the module's arguments, the loader's settings."""

import pytest
import torch
from omegaconf import OmegaConf

from srdistill.data.datamodule import SRDataModule
from srdistill.training import perf
from srdistill.training.perf import speed_callbacks
from tests.helpers.configs import compose_config


def train_cfg(*overrides: str):
    return compose_config("train", ["experiment=smoke", *overrides])


def test_defaults_are_off_and_map_to_the_modules_defaults():
    cfg = train_cfg()
    perf.check_perf_options(cfg)
    assert perf.module_options(cfg.perf) == {"teacher_autocast": None}
    assert speed_callbacks(cfg.perf) == []  # no speed callback: the step runs as written
    assert cfg.datamodule.pin_memory == cfg.datamodule.persistent_workers == "auto"


def test_compile_backend_and_mode_reach_the_speed_callback_only_when_compile_is_on():
    on = train_cfg("perf.compile=true", "perf.compile_mode=max-autotune")
    perf.check_perf_options(on)
    (speed,) = speed_callbacks(on.perf)
    assert (speed.compile_backend, speed.compile_mode) == ("inductor", "max-autotune")
    off = train_cfg("perf.compile_mode=max-autotune")
    assert speed_callbacks(off.perf) == []


@pytest.mark.parametrize(
    "overrides,needles",
    [
        (["perf.teacher_autocast=fp8"], ["perf.teacher_autocast='fp8'", "bf16"]),
        (["perf.channels_last=maybe"], ["perf.channels_last='maybe'", "true or false"]),
        (["perf.compile=1"], ["perf.compile=1"]),
        (["perf.compile=true", "perf.compile_backend=tensorrtx"], ["tensorrtx", "inductor"]),
        (["perf.compile=true", "perf.compile_mode=fastest"], ["fastest", "max-autotune"]),
        (
            ["perf.compile=true", "perf.compile_backend=eager", "perf.compile_mode=default"],
            ["perf.compile_mode='default'", "inductor"],
        ),
        (["perf.pin_memory=yes"], ["perf.pin_memory='yes'", "auto"]),
        (["perf.persistent_workers=true"], ["num_workers=0", "perf.persistent_workers"]),
    ],
)
def test_bad_values_name_the_option(overrides, needles):
    with pytest.raises(ValueError) as err:
        perf.check_perf_options(train_cfg(*overrides))
    for needle in needles:
        assert needle in str(err.value)


def test_persistent_workers_with_workers_is_accepted():
    perf.check_perf_options(train_cfg("perf.persistent_workers=true", "num_workers=2"))


class Items(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"lq": torch.zeros(3, 2, 2), "gt": torch.zeros(3, 4, 4)}


@pytest.mark.parametrize(
    "workers,pin,persistent,expected",
    [
        (0, "auto", "auto", (torch.cuda.is_available(), False)),
        (2, "auto", "auto", (torch.cuda.is_available(), True)),
        (2, True, False, (True, False)),
        (0, False, "auto", (False, False)),
    ],
)
def test_loader_settings_follow_the_options_auto_keeping_the_old_behaviour(
    workers, pin, persistent, expected
):
    data = SRDataModule(
        Items(),
        scale=2,
        batch_size=2,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=persistent,
    )
    loader = data.train_dataloader()
    assert (loader.pin_memory, loader.persistent_workers) == expected


def test_the_datamodule_reads_the_perf_block():
    cfg = train_cfg("perf.pin_memory=false", "perf.persistent_workers=false", "num_workers=2")
    node = OmegaConf.to_container(cfg.datamodule, resolve=True)
    assert (node["pin_memory"], node["persistent_workers"]) == (False, False)
