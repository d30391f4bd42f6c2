"""What every command-line entry point shares: building a model and failing with one line."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from srdistill.models.checkpoint import CheckpointError, load_weights

USER_ERRORS = (CheckpointError, FileNotFoundError, ValueError)


def model_choice(group: str = "model") -> str:
    """The name picked for a config group (``model=span_ch26`` -> ``span_ch26``)."""
    try:
        return str(HydraConfig.get().runtime.choices.get(group, group))
    except ValueError:  # not running under Hydra (tests calling run() directly)
        return group


def build_model(
    model_cfg: DictConfig, ckpt: str | None, name: str, option: str = "ckpt"
) -> nn.Module:
    """Instantiate an architecture and, when given, load its weights (set by ``option``)."""
    model = instantiate(model_cfg)
    if ckpt:
        load_weights(model, ckpt, model_name=name, option=option)
    return model


def _fail(err: BaseException) -> None:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)


def exit_on_user_error(func: Callable) -> Callable:
    """Turn a bad option or file into one line on stderr and exit code 2, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as err:
            _fail(err)
        except InstantiationException as err:  # a user error raised inside a config's target
            if isinstance(err.__cause__, USER_ERRORS):
                _fail(err.__cause__)
            raise

    return wrapper
