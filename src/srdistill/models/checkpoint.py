"""Loading released and trained weights safely and strictly.

- Files are read with ``torch.load(weights_only=True)`` (or safetensors): a checkpoint can hold
  tensors only and never runs code.
- Wrappers are unwrapped: ``params_ema`` (preferred, as BasicSR's test scripts do), ``params``,
  ``state_dict``; a DDP ``module.`` prefix is stripped.
- Official EDSR-PyTorch / RCAN key names are converted to BasicSR's (the mean-shift convs are
  checked to be the standard DIV2K mean and dropped).
- Loading is strict: anything missing, unexpected or of the wrong shape is one clear error line.
  Tensors a model derives itself are reconciled first: SwinIR's ``attn_mask`` and
  ``relative_position_index`` buffers (they depend on the ``img_size`` a file was built with) and
  SPAN's ``eval_conv`` copies in training-form checkpoints.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from srdistill.models.heads.upsample import DIV2K_RGB_MEAN

# how much more than its own size a weights zip may unpack to (torch stores entries as they are)
UNPACK_FACTOR, UNPACK_SLACK = 4, 16 << 20
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
DERIVED_BUFFERS = ("attn_mask", "relative_position_index")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; the message is one line."""


def read_checkpoint_file(path: str | Path, option: str | None = None) -> object:
    """The one reader of every weights or run file: tensors and plain containers, never code.

    ``option`` is the setting that named the file (``teacher.ckpt``, ``ckpt_path``...), so that
    any failure is one line telling the user which file and which option to fix.
    """
    path = Path(path)
    label = f"{option}={path}" if option else str(path)
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "does not exist"
        raise CheckpointError(f"checkpoint {label} {what}; check the path")
    _check_unpacked_size(path, label)
    try:
        # torch warns about pickle protocols it does not expect; the refusal below says it all
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if path.suffix == ".safetensors" or is_safetensors(path):
                from safetensors.torch import load_file

                return load_file(str(path))
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any reader failure becomes one line for the user
        raise CheckpointError(f"cannot read checkpoint {label}: {_reason(err)}") from err


def _check_unpacked_size(path: Path, label: str) -> None:
    """Refuse a zip (torch's format) whose entries unpack to far more than the file holds:
    torch stores entries uncompressed, and ``torch.load`` would allocate whatever a crafted,
    compressed entry declares."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(f"cannot read checkpoint {label}: {_reason(err)}") from err
    size = path.stat().st_size
    if declared > UNPACK_FACTOR * size + UNPACK_SLACK:
        raise CheckpointError(
            f"cannot read checkpoint {label}: its entries unpack to {declared:,} bytes from a "
            f"{size:,}-byte file; torch writes weights uncompressed, so this file was crafted or "
            "re-packed: get the original"
        )


def is_safetensors(path: Path) -> bool:
    """Whether ``path`` starts as a safetensors file does (a little-endian header length that
    fits the file, then a JSON object), whatever its name: exports are checked under a temporary
    name before they get theirs."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return 0 < int.from_bytes(head[:8], "little") <= path.stat().st_size - 8


def _reason(err: Exception) -> str:
    text = str(err)
    if isinstance(err, pickle.UnpicklingError) and "WeightsUnpickler error:" in text:
        # torch's own advice (weights_only=False) would run the file's code: never give it
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0]
        detail = detail.split(". ")[0][:120]
        return (
            f"it is not tensors and plain values only ({detail}); srdistill reads weights only "
            "and never unpickles code"
        )
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else type(err).__name__


def read_state_dict(path: str | Path, option: str | None = None) -> dict[str, torch.Tensor]:
    """Read a weights file into a flat ``{name: tensor}`` dict without executing any code."""
    return unwrap_state_dict(read_checkpoint_file(path, option), path)


RUN_CHECKPOINT_KEYS = ("state_dict", "global_step", "loops")


def read_run_checkpoint(
    path: str | Path, option: str, instead: str, needs: tuple[str, ...] = RUN_CHECKPOINT_KEYS
) -> dict:
    """A training run's checkpoint, holding every key of ``needs`` (resuming needs Lightning's
    ``state_dict``/``global_step``/``loops``); ``instead`` says what to do with any other file."""
    raw = read_checkpoint_file(path, option)
    if not isinstance(raw, Mapping) or not all(k in raw for k in needs):
        kind = "a weights file" if isinstance(raw, Mapping) else f"a {type(raw).__name__}"
        raise CheckpointError(
            f"{option}={path} is {kind}, not a srdistill training checkpoint (no "
            f"{'/'.join(needs)}); {instead}"
        )
    if not isinstance(raw["state_dict"], Mapping):
        raise CheckpointError(f"{option}={path}: its state_dict is not a table of tensors")
    return dict(raw)


def unwrap_state_dict(raw: object, path: str | Path = "<memory>") -> dict[str, torch.Tensor]:
    """Take the tensor dict out of the usual wrappers and strip a DDP ``module.`` prefix."""
    while isinstance(raw, Mapping) and not _is_tensor_dict(raw):
        key = next((k for k in WRAPPER_KEYS if k in raw), None)
        if key is None:
            raise CheckpointError(
                f"checkpoint {path} holds no state dict (top-level keys: {list(raw)[:6]})"
            )
        raw = raw[key]
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(raw).__name__}, not a state dict")
    state = dict(raw)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _is_tensor_dict(raw: Mapping) -> bool:
    return bool(raw) and all(isinstance(v, torch.Tensor) for v in raw.values())


def _check_mean_convs(state: dict[str, torch.Tensor], path: str | Path) -> None:
    mean = torch.tensor(DIV2K_RGB_MEAN)
    for name, sign in (("sub_mean", -1.0), ("add_mean", 1.0)):
        if f"{name}.weight" not in state:
            continue
        weight, bias = state.pop(f"{name}.weight"), state.pop(f"{name}.bias")
        ok = torch.allclose(weight.flatten(1).float(), torch.eye(3), atol=1e-4) and torch.allclose(
            bias.float(), sign * 255.0 * mean, atol=1e-2
        )
        if not ok:
            raise CheckpointError(
                f"checkpoint {path}: {name} is not the standard DIV2K mean shift; not supported"
            )


_OFFICIAL_RENAMES = (
    (r"^head\.0\.", "conv_first."),
    (r"^tail\.0\.(\d+)\.", r"upsample.\1."),
    (r"^tail\.1\.", "conv_last."),
    # RCAN: group g, block b
    (
        r"^body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.0\.",
        r"body.\1.residual_group.\2.rcab.3.attention.1.",
    ),
    (
        r"^body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.2\.",
        r"body.\1.residual_group.\2.rcab.3.attention.3.",
    ),
    (r"^body\.(\d+)\.body\.(\d+)\.body\.(\d)\.", r"body.\1.residual_group.\2.rcab.\3."),
)


def convert_official_keys(state: dict[str, torch.Tensor], path: str | Path = "<memory>") -> dict:
    """EDSR-PyTorch / RCAN official names -> BasicSR names; other dicts are returned unchanged."""
    if "head.0.weight" not in state:
        return state
    state = dict(state)
    _check_mean_convs(state, path)
    is_rcan = any("conv_du" in k for k in state)
    body_ids = {int(m.group(1)) for k in state if (m := re.match(r"^body\.(\d+)\.", k))}
    trunk = max(body_ids)
    out = {}
    for key, value in state.items():
        new = re.sub(rf"^body\.{trunk}\.", "conv_after_body.", key)
        for pattern, repl in _OFFICIAL_RENAMES:
            new = re.sub(pattern, repl, new)
        if is_rcan:
            new = _rename_rcan_group_conv(new)
        else:
            new = re.sub(r"^body\.(\d+)\.body\.0\.", r"body.\1.conv1.", new)
            new = re.sub(r"^body\.(\d+)\.body\.2\.", r"body.\1.conv2.", new)
        out[new] = value
    return out


def _rename_rcan_group_conv(key: str) -> str:
    match = re.match(r"^body\.(\d+)\.body\.(\d+)\.(weight|bias)$", key)
    return f"body.{match.group(1)}.conv.{match.group(3)}" if match else key


def _reconcile_derived(state: dict, model_state: Mapping[str, torch.Tensor]) -> dict:
    """Use the model's own copies of tensors it derives rather than the file's."""
    state = dict(state)
    for key, own in model_state.items():
        if key.rsplit(".", 1)[-1] in DERIVED_BUFFERS and (
            key not in state or state[key].shape != own.shape
        ):
            state[key] = own
    for key in [k for k in state if ".eval_conv." in k and k not in model_state]:
        if key.replace(".eval_conv.", ".sk.") in model_state:  # training-form SPAN file
            del state[key]
    for key in [
        k for k in state if k.rsplit(".", 1)[-1] in DERIVED_BUFFERS and k not in model_state
    ]:
        del state[key]  # e.g. a mask built for another img_size where this model builds none
    return state


def mismatch_report(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str | None:
    """A short description of what does not fit, or None when the state dict fits exactly."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(state[k].shape)}!={tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", wrong)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:3])}{more}")
    return "; ".join(parts) or None


def load_weights(
    model: nn.Module, path: str | Path, model_name: str | None = None, option: str | None = None
) -> nn.Module:
    """Load ``path`` into ``model`` strictly; a misfit raises a one-line ``CheckpointError``."""
    state = convert_official_keys(read_state_dict(path, option), path)
    return load_state_strictly(model, state, f"checkpoint {path}", model_name)


def load_state_strictly(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str, model_name: str | None = None
) -> nn.Module:
    """Load a state dict (derived buffers reconciled) or raise one line naming ``source``."""
    name = model_name or type(model).__name__
    state = _reconcile_derived(state, model.state_dict())
    problem = mismatch_report(model, state)
    if problem:
        raise CheckpointError(f"{source} does not fit model {name}: {problem}")
    model.load_state_dict(state, strict=True)
    return model


def student_weights(
    state: Mapping[str, torch.Tensor], use_ema: bool = True, path: str | Path = "<memory>"
) -> dict[str, torch.Tensor]:
    """The student's tensors of a run's ``state_dict`` (the EMA copy when there is one)."""
    for prefix in ("student_ema.module.", "student.") if use_ema else ("student.",):
        picked = {
            k[len(prefix) :]: v
            for k, v in state.items()
            if isinstance(k, str) and k.startswith(prefix)
        }
        if picked and all(isinstance(v, torch.Tensor) for v in picked.values()):
            return picked
        if picked:
            raise CheckpointError(f"{path}: the student's state_dict holds non-tensor values")
    raise CheckpointError(f"{path} holds no student weights")


def network_weights_from_run(
    path: str | Path, use_ema: bool = True, option: str = "ckpt"
) -> dict[str, torch.Tensor]:
    """The student's weights from a training-run checkpoint (the EMA copy when there is one)."""
    instead = "give the last.ckpt / best-*.ckpt of a train.py run"
    state = read_run_checkpoint(path, option, instead, needs=("state_dict",))["state_dict"]
    return student_weights(state, use_ema, path)
