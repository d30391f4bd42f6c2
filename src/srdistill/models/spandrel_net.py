"""Any super-resolution checkpoint spandrel recognises, as a network like srdistill's own.

With ``model=spandrel`` (``teacher=spandrel``, ``--model spandrel``), and for any file none of
srdistill's architectures fits (``srdistill.models.load``), the architecture comes from the
weights file: the file is read by srdistill's one reader (tensors only, never unpickled code),
its state dict handed to ``spandrel.ModelLoader().load_from_state_dict`` (spandrel's detection is
a closed list of architectures told apart by key names and shapes), and the network wrapped so
that any input size works (padded to what the architecture needs, the output cropped back) with
RGB in [0, 1] in and out. Install the extra with ``pip install 'srdistill[spandrel]'``.

Feature taps (``kd_taps``) name module paths of the spandrel architecture itself, as in its
state dict (``body.0``, not ``model.body.0``): ``tap_root`` is the wrapped network. Features the
size of the padded input are cropped back to the input's LR size, and a replacement
(``forward_replacing``) of that size is pasted over the padded feature (see models/taps.py).

spandrel sizes a network from the shapes in the file and allocates it before it compares the
weights, so a small crafted file (one tensor declaring 600 channels, or tensors expanded from a
single stored value) could make it allocate gigabytes. So tensors declaring more than
``PLAUSIBLE_GROWTH`` times the file's bytes plus ``PLAUSIBLE_SLACK`` are refused (a float16
file doubles in float32; a few buffers are not stored), and the network is first built on the
meta device (shapes, no memory): weights that do not fit it are refused there, and so is a
network over the same bound. Architectures whose constructor cannot run on meta (SwinIR reads
values with ``item()``) skip that dry run and are built as before.
"""

from __future__ import annotations

import warnings
from itertools import chain
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from srdistill.models.checkpoint import CheckpointError, read_checkpoint_file, unwrap_state_dict

INSTALL = "pip install 'srdistill[spandrel]'"
PLAUSIBLE_GROWTH = 4
PLAUSIBLE_SLACK = 16 * 2**20
STATE_DICT_MISMATCH = "Error(s) in loading state_dict"


class NotSpandrelError(CheckpointError):
    """spandrel does not recognise the file's architecture (or is not installed)."""


def _unrecognised(path, option: str) -> NotSpandrelError:
    return NotSpandrelError(
        f"{option}={path}: spandrel does not recognise this checkpoint's architecture; "
        "give a super-resolution model spandrel supports, or one of srdistill's models"
    )


def _cannot_load(path, option: str, err: Exception) -> CheckpointError:
    first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
    return CheckpointError(
        f"{option}={path}: spandrel recognised the file but cannot load it ({first})"
    )


def _check_plausible(size: int, what: str, file_size: int, path, option: str) -> None:
    if size > PLAUSIBLE_GROWTH * file_size + PLAUSIBLE_SLACK:
        raise CheckpointError(
            f"{option}={path}: {what} {size / 2**20:.0f} MiB from a {file_size / 2**10:.0f} KiB "
            "file, sizes it does not hold (crafted or damaged); give an intact weights file"
        )


class SpandrelNetwork(nn.Module):
    """A spandrel model behind srdistill's interface: ``(N, 3, h, w)`` in [0, 1] to
    ``(N, 3, s*h, s*w)``; the input is reflect-padded to the architecture's size rule
    (minimum, multiple, square) and the output cropped back."""

    def __init__(
        self, model: nn.Module, scale: int, minimum=0, multiple_of=1, square=False, call=None
    ):
        super().__init__()
        self.model, self.scale, self.architecture = model, scale, type(model).__name__
        self.minimum, self.multiple_of, self.square = minimum, multiple_of, square
        self.call = call or (lambda model, image: model(image))

    @property
    def tap_root(self) -> nn.Module:
        """Taps are module paths of the architecture, without the wrapper's ``model.``."""
        return self.model

    def tap_input_size(self, h: int, w: int) -> tuple[int, int]:
        """The LR size the architecture sees for an ``h x w`` input (padded)."""
        ph, pw = self.padding(h, w)
        return h + ph, w + pw

    def padding(self, h: int, w: int) -> tuple[int, int]:
        def up(n: int) -> int:
            n = max(n, self.minimum)
            return -(-n // self.multiple_of) * self.multiple_of

        ph, pw = up(h), up(w)
        if self.square:
            ph = pw = max(ph, pw)
        return ph - h, pw - w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = self.padding(h, w)
        if ph or pw:
            # reflection needs the pad to be smaller than the side; tiny inputs repeat the edge
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        out = self.call(self.model, x)
        return out[..., : h * self.scale, : w * self.scale]


def spandrel_installed() -> bool:
    try:
        import spandrel  # noqa: F401
    except ImportError:
        return False
    return True


def spandrel_network(
    state: dict, path: str | Path, option: str = "ckpt", scale: int | None = None
) -> SpandrelNetwork:
    """The network spandrel recognises in ``state`` (read from ``path`` by srdistill's reader),
    wrapped, in eval mode; ``scale``: the factor expected (None: whatever the file holds)."""
    try:
        import spandrel
    except ImportError:
        raise ValueError(
            f"{option}={path}: reading it needs the spandrel package; {INSTALL}"
        ) from None
    _check_size_on_meta(spandrel, state, path, option)
    try:
        descriptor = spandrel.ModelLoader("cpu").load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise _unrecognised(path, option) from None
    except (RuntimeError, KeyError, ValueError, IndexError) as err:
        raise _cannot_load(path, option, err) from None
    return _wrap(descriptor, path, option, scale)


def _check_size_on_meta(spandrel, state: dict, path, option: str) -> None:
    """Refuse, before any allocation, weights that do not fit the network spandrel sizes
    from them, and tensors or a network implausibly larger than the file."""
    file_size = Path(path).stat().st_size
    tensors = [t for t in state.values() if isinstance(t, torch.Tensor)]
    declared = sum(t.numel() * t.element_size() for t in tensors)
    _check_plausible(declared, "its tensors declare", file_size, path, option)
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # copying into meta tensors warns it is a no-op
            model = spandrel.MAIN_REGISTRY.load(dict(state)).model
    except spandrel.UnsupportedModelError:
        raise _unrecognised(path, option) from None
    except Exception as err:  # noqa: BLE001 - some constructors cannot run on meta
        if isinstance(err, RuntimeError) and str(err).startswith(STATE_DICT_MISMATCH):
            raise _cannot_load(path, option, err) from None
        return  # built for real below, as before
    tensors = chain(model.parameters(), model.buffers())
    size = sum(t.numel() * t.element_size() for t in tensors)
    name = type(model).__name__
    _check_plausible(size, f"its shapes make a {name} network of", file_size, path, option)


def _wrap(descriptor, path, option: str, scale: int | None) -> SpandrelNetwork:
    import spandrel

    name = descriptor.architecture.name
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose != "SR":
        raise CheckpointError(
            f"{option}={path} holds a {name} model for {descriptor.purpose}, not super-resolution"
        )
    if (descriptor.input_channels, descriptor.output_channels) != (3, 3):
        raise CheckpointError(
            f"{option}={path}: {name} takes {descriptor.input_channels} and gives "
            f"{descriptor.output_channels} channels; srdistill works on RGB (3 and 3)"
        )
    if scale is not None and descriptor.scale != scale:
        raise ValueError(
            f"{option}={path} holds a x{descriptor.scale} {name} network, not x{scale}; "
            f"drop the scale option or give scale={descriptor.scale}"
        )
    rule = descriptor.size_requirements
    # a few architectures run through their own call (spandrel keeps it on the descriptor)
    call = getattr(descriptor, "_call_fn", None)
    network = SpandrelNetwork(
        descriptor.model, descriptor.scale, rule.minimum, rule.multiple_of, rule.square, call
    )
    network.architecture = descriptor.architecture.id
    return network.eval()


class SpandrelModel:
    """What ``conf/model/spandrel.yaml`` instantiates: it builds the network from the weights
    file itself (``build``), so the weights are read once and never loaded a second time."""

    def __init__(self, scale: int):
        self.scale = scale

    def build(self, path: str | Path, option: str = "ckpt") -> SpandrelNetwork:
        state = unwrap_state_dict(read_checkpoint_file(path, option), path)
        return spandrel_network(state, path, option, self.scale)
