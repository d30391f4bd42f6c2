"""What every command-line entry point shares: building a model and failing with one line."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from srdistill.cli.app import one_line
from srdistill.counts import check_count
from srdistill.models import zoo
from srdistill.models.checkpoint import CheckpointError
from srdistill.models.load import SPANDREL, load_network
from srdistill.models.spandrel_net import SpandrelModel

# OSError: a read-only folder, a full disk, a missing permission (messages name the path)
USER_ERRORS = (CheckpointError, OSError, ValueError)


def model_choice(group: str = "model") -> str:
    """The name picked for a config group (``model=span_ch26`` -> ``span_ch26``)."""
    try:
        return str(HydraConfig.get().runtime.choices.get(group, group))
    except ValueError:  # not running under Hydra (tests calling run() directly)
        return group


def build_model(
    model_cfg: DictConfig, ckpt: str | None, name: str, option: str = "ckpt", sha256=None
) -> nn.Module:
    """Instantiate an architecture and, when given, load its weights through the one loader
    (``srdistill.models.load``; set by ``option``: a file, a run checkpoint's deployed student
    or ``zoo:<name>``, fetched and verified, ``sha256`` pinning an entry that publishes none)."""
    model = instantiate(model_cfg)
    if isinstance(model, SpandrelModel):  # the file names its architecture: read it once
        if not ckpt:
            raise ValueError(f"{option} is not set: {name} builds the network from its weights")
        return load_network(ckpt, SPANDREL, model.scale, option=option, sha256=sha256).network
    if not ckpt:
        return model
    training = model.training  # a student goes on training in the mode it was built in
    loaded = load_network(ckpt, into=model, name=name, option=option, sha256=sha256)
    return loaded.network.train(training)


# torch re-raises an error from a data-loader worker with the worker's whole traceback as its
# message: "Caught ValueError in DataLoader worker process 0.\nOriginal Traceback ...\n<message>"
WORKER_TRACEBACK = "\nOriginal Traceback (most recent call last):"
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*: ")


def user_message(err: BaseException) -> str:
    """The error's message as one line; from a worker, the original message only."""
    text = str(err)
    if WORKER_TRACEBACK in text:
        lines = text.split(WORKER_TRACEBACK, 1)[1].splitlines()
        starts = [i for i, line in enumerate(lines) if EXCEPTION_LINE.match(line)]
        if starts:
            text = "\n".join(lines[starts[-1] :]).split(": ", 1)[1]
    return one_line(text) or type(err).__name__


def _fail(err: BaseException) -> None:
    print(f"error: {user_message(err)}", file=sys.stderr)
    sys.exit(2)


def check_scale(scale) -> int:
    """The upscaling factor as a positive integer, or a one-line error naming ``scale=``."""
    return check_count("scale", scale, hint="the upscaling factor (2, 3, 4, 8)")


def _missing_keys(node, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return [prefix] if node == "???" else []
    return [m for k, v in items for m in _missing_keys(v, f"{prefix}.{k}" if prefix else str(k))]


def check_required(cfg: DictConfig) -> None:
    """Every mandatory option (``???`` in conf/) is given, before anything is read or built."""
    missing = sorted(_missing_keys(OmegaConf.to_container(cfg, resolve=False)))
    if missing:
        raise ValueError(
            f"{', '.join(missing)} not set: give {'it' if len(missing) == 1 else 'them'} on the "
            f"command line, e.g. {missing[0]}=<value>"
        )


def check_flags(cfg: DictConfig, options: tuple[str, ...]) -> None:
    """Each named on/off option is true or false (``self_ensemble=maybe`` would read as on)."""
    for option in options:
        value = OmegaConf.select(cfg, option)
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{option}={value!r} is not a switch: give {option}=true or false")


def check_input_files(cfg: DictConfig, options: tuple[str, ...]) -> None:
    """Each named file option that is set points at an existing file or a teacher-zoo entry
    (``zoo:<name>``; fetched later, when the model is built)."""
    for option in options:
        value = OmegaConf.select(cfg, option)
        if zoo.is_reference(value):
            zoo.entry_for(value, option)
        elif value and not os.path.isfile(str(value)):
            raise FileNotFoundError(f"{option}={value}: no such file; check the path")


def user_error(err: BaseException) -> BaseException | None:
    """The error to report in one line when ``err`` is the user's (a bad option or file, also
    raised inside a config's target), else None."""
    if isinstance(err, InstantiationException) and isinstance(err.__cause__, USER_ERRORS):
        return err.__cause__
    return err if isinstance(err, USER_ERRORS) else None


def exit_on_user_error(func: Callable) -> Callable:
    """Turn a bad option or file into one line on stderr and exit code 2, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as err:
            if user_error(err) is None:
                raise
            _fail(user_error(err))

    return wrapper
