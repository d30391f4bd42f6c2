"""One network from what a user points at: the loader of every entry point.

``load_network`` takes a weights file or a teacher-zoo reference and returns the network ready
to run with a description of what it is. The file may be

- a ``train.py`` run checkpoint: its deployed student, rebuilt from the plain values the run
  recorded (``srdistill.models.run_student``);
- an export of srdistill, a released or official file of one of srdistill's architectures: the
  architecture named by its safetensors metadata, told from its tensor shapes
  (``srdistill.models.from_file``) or named by the caller;
- ``zoo:<name>``: a teacher-zoo file, fetched and verified by checksum (``srdistill.models.zoo``);
- any other super-resolution checkpoint spandrel recognises (the optional ``spandrel`` extra);
  spandrel tells the architecture from the state dict by its own closed list of architectures
  (``srdistill.models.spandrel_net``).

With ``into``, the caller built the network itself from its config (a ``conf/model`` with its
overrides, or the user's own code) and the file's weights are loaded into it strictly; a run
checkpoint gives its deployed student's. Every file is read once by the one reader (tensors and
plain values, never unpickled code), and nothing read from a file names a callable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from torch import nn

from srdistill.models import zoo
from srdistill.models.checkpoint import (
    CheckpointError,
    convert_official_keys,
    load_state_strictly,
    read_checkpoint_file,
    unwrap_state_dict,
)
from srdistill.models.detect import Architecture
from srdistill.models.from_file import is_run_checkpoint, network_from_weights
from srdistill.models.registry import MODELS
from srdistill.models.run_student import (
    BUILD_RECORD_KEY,
    deployed_student_into,
    deployed_student_with_architecture,
)
from srdistill.models.spandrel_net import (
    INSTALL,
    NotSpandrelError,
    spandrel_installed,
    spandrel_network,
)

SPANDREL = "spandrel"  # the model name that reads the architecture through spandrel
FROM_RUN = "the deployed student of a train.py run"


@dataclass(frozen=True)
class LoadedNetwork:
    """A network ready to run (eval mode, CPU, finite weights) and what it is."""

    network: nn.Module
    scale: int | None  # None only for a caller's own network that does not say
    name: str  # a registry name, spandrel's architecture id, or the caller's name for ``into``
    architecture: Architecture | None  # srdistill's (name, args) when one fits the weights
    description: str  # one line for people: what the network is and where it came from


def check_model_name(name: str | None, option: str = "model") -> None:
    """A model name (or None) the loader takes, refused in one line before anything is read."""
    if name is not None and name != SPANDREL and name not in MODELS:
        raise ValueError(
            f"{option}={name} is not one of srdistill's models ({', '.join(MODELS)}) "
            f"nor {SPANDREL} (any checkpoint spandrel recognises)"
        )


def load_network(
    ckpt: str | Path,
    model: str | None = None,
    scale: int | None = None,
    *,
    into: nn.Module | None = None,
    name: str | None = None,
    option: str = "ckpt",
    use_ema: bool = True,
    sha256: str | None = None,
) -> LoadedNetwork:
    """The network ``ckpt`` (a file or ``zoo:<name>``) holds.

    ``model``: a registry name or ``spandrel`` for files that do not say what they hold (None:
    the file tells); ``scale``: the factor expected (a file made for another one is refused);
    ``into``: a network built by the caller, ``name`` its name in messages; ``option``: the
    setting that named the file, in every error; ``use_ema``: a run's EMA weights when it kept
    them; ``sha256``: the hash the user pins the file to.
    """
    check_model_name(model, "--model" if option.startswith("--") else "model")
    path, model, origin = _local_file(ckpt, model, sha256, option)
    raw = read_checkpoint_file(path, option)
    if into is not None:
        loaded = _into(into, raw, path, scale, name or type(into).__name__, option, use_ema)
    elif model == SPANDREL:
        loaded = _through_spandrel(raw, path, scale, option)
    else:
        loaded = _srdistill_or_spandrel(raw, path, model, scale, option, use_ema)
    check_finite(loaded.network, f"the weights of {option}={ckpt}")
    return replace(loaded, description=f"{loaded.description}, {origin}") if origin else loaded


def _local_file(ckpt, model: str | None, sha256, option: str) -> tuple[str, str | None, str]:
    """``ckpt`` as a verified local file, the model name (a zoo entry names its own) and, for a
    zoo entry, where the file came from."""
    if not zoo.is_reference(ckpt):
        return zoo.verified_file(str(ckpt), sha256, option), model, ""
    entry = zoo.entry_for(ckpt, option)
    if model is not None and model != entry.model:
        raise ValueError(
            f"{option}={ckpt} is a {entry.model} network, not {model}; leave out the model"
        )
    return zoo.verified_file(ckpt, sha256, option), entry.model, f"teacher zoo entry {entry.name}"


def _srdistill_or_spandrel(raw, path, model, scale, option: str, use_ema: bool) -> LoadedNetwork:
    """One of srdistill's architectures; a file that is none of them, named by no model, is
    handed to spandrel."""
    found = network_from_weights(raw, path, model, scale, option, use_ema)
    if found is not None:
        network, arch = found
        how = _how_told(raw, model)
        scale = arch[1]["scale"] if arch else getattr(network, "scale", scale)
        name = arch[0] if arch else "network"
        return LoadedNetwork(network, scale, name, arch, f"{name} x{scale} ({how})")
    if not spandrel_installed():
        raise CheckpointError(
            f"{option}={path}: cannot tell its architecture from the weights; give the model name "
            f"(one of {', '.join(MODELS)}), or for other architectures install spandrel: {INSTALL}"
        )
    try:
        return _through_spandrel(raw, path, scale, option)
    except NotSpandrelError:
        raise CheckpointError(
            f"{option}={path}: cannot tell its architecture from the weights: none of "
            f"srdistill's models fits them and spandrel does not recognise them; give the model "
            f"name (one of {', '.join(MODELS)})"
        ) from None


def _how_told(raw, model: str | None) -> str:
    if is_run_checkpoint(raw):
        return FROM_RUN
    return f"loaded as {model}" if model is not None else "architecture read from the file"


def _through_spandrel(raw, path, scale: int | None, option: str) -> LoadedNetwork:
    network = spandrel_network(unwrap_state_dict(raw, path), path, option, scale)
    description = f"{network.architecture} x{network.scale} (read by spandrel)"
    return LoadedNetwork(network, network.scale, network.architecture, None, description)


def _into(network: nn.Module, raw, path, scale, name: str, option: str, use_ema: bool):
    """The file's weights loaded strictly into the caller's ``network``."""
    if is_run_checkpoint(raw):
        network = _run_into(network, raw[BUILD_RECORD_KEY], path, name, option, use_ema)
        how = FROM_RUN
    else:
        state = convert_official_keys(unwrap_state_dict(raw, path), path)
        network = load_state_strictly(network, state, f"{option}={path}", name)
        how = f"the weights of {Path(path).name}"
    scale = scale if scale is not None else getattr(network, "scale", None)
    return LoadedNetwork(network.eval(), scale, name, None, f"{name} ({how})")


def _run_into(network: nn.Module, build, path, name: str, option: str, use_ema: bool):
    """A run's deployed student in ``network``: rebuilt from the run's record and copied over
    where srdistill can rebuild it (so a folded SPAN fills a network built folded), else (a
    student of the user's own code) loaded into ``network`` and finished there."""
    if isinstance(build, Mapping) and build.get("unavailable"):
        return deployed_student_into(network, path, use_ema, option)
    deployed = deployed_student_with_architecture(path, use_ema, option)[0]
    return load_state_strictly(network, deployed.state_dict(), f"{option}={path}", name)


def check_finite(model: nn.Module, what: str) -> None:
    """Refuse a network with NaN/inf weights (a diverged run) instead of running or shipping it."""
    state = model.state_dict()
    bad = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        raise ValueError(
            f"{what} hold non-finite values (NaN/inf) in {len(bad)} tensor(s): "
            f"{', '.join(bad[:3])}{more}; the run that made them diverged"
        )
