"""The teacher zoo: official checkpoints by name, fetched on demand and verified by checksum.

``zoo.json`` (package data) lists each checkpoint as plain values read through an allow-list:
the srdistill model it fits, where it is published, its file name and its checksum. A reference
``zoo:<name>`` (``teacher.ckpt=zoo:edsr_x4``) becomes a local file under the torch hub cache
(``<torch.hub.get_dir()>/checkpoints/<file>``), downloaded there when absent. Every file is
verified before it is read: a full SHA-256 or the prefix the authors published in the file name;
a mismatch is an error, never a load. An entry without any published checksum is used only
once the user pins the hash they trust (``teacher.sha256=<hex>``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from torch.hub import download_url_to_file

from srdistill.checksums import file_sha256
from srdistill.models.checkpoint import CheckpointError
from srdistill.models.registry import check_model

PREFIX = "zoo:"
ZOO_FILE = "zoo.json"
FIELDS = {
    "model",
    "model_args",
    "scale",
    "url",
    "archive_url",
    "file",
    "sha256",
    "sha256_prefix",
    "set5_psnr",
    "set5_psnr_kind",
    "source",
}
REQUIRED = {"model", "model_args", "scale", "file", "source"}
HEX = re.compile(r"[0-9a-f]+")
PIN = re.compile(r"[0-9a-fA-F]{64}")
SAFE_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ZooError(CheckpointError):
    """A zoo name, download or checksum problem; the message is one line."""


@dataclass(frozen=True)
class ZooEntry:
    name: str
    model: str
    model_args: dict
    scale: int
    file: str
    source: str
    url: str | None = None
    archive_url: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    set5_psnr: float | None = None
    set5_psnr_kind: str = "published"

    @property
    def checksum(self) -> str | None:
        """What the file's SHA-256 must start with (the whole hash where it is published)."""
        return self.sha256 or self.sha256_prefix


def _hex(name: str, field: str, value, length: int | None = None) -> str | None:
    if value is None:
        return None
    if type(value) is not str or not HEX.fullmatch(value) or (length and len(value) != length):
        raise ZooError(f"zoo entry {name}: {field} must be lowercase hex, got {value!r:.80}")
    return value


def _entry(name: str, record) -> ZooEntry:
    if not isinstance(record, dict):
        raise ZooError(f"zoo entry {name} is not a table")
    unknown, missing = set(record) - FIELDS, REQUIRED - set(record)
    if unknown or missing:
        raise ZooError(f"zoo entry {name}: unknown {sorted(unknown)}, missing {sorted(missing)}")
    _, model_args = check_model(record["model"], record["model_args"])  # registry names only
    file = record["file"]
    if type(file) is not str or not SAFE_FILE.fullmatch(file):
        raise ZooError(f"zoo entry {name}: file must be a plain file name, got {file!r:.80}")
    psnr = record.get("set5_psnr")
    if psnr is not None and type(psnr) not in (int, float):
        raise ZooError(f"zoo entry {name}: set5_psnr must be a number")
    texts = {k: record.get(k) for k in ("url", "archive_url", "source")}
    if any(v is not None and type(v) is not str for v in texts.values()):
        raise ZooError(f"zoo entry {name}: url, archive_url and source must be text")
    kind = record.get("set5_psnr_kind", "published")
    if kind not in ("published", "measured"):
        raise ZooError(f"zoo entry {name}: set5_psnr_kind must be published or measured")
    return ZooEntry(
        name=name,
        model=record["model"],
        model_args=model_args,
        scale=model_args.get("scale", record["scale"]),
        file=file,
        sha256=_hex(name, "sha256", record.get("sha256"), 64),
        sha256_prefix=_hex(name, "sha256_prefix", record.get("sha256_prefix")),
        set5_psnr=psnr,
        set5_psnr_kind=kind,
        **texts,
    )


def load_registry(text: str | None = None) -> dict[str, ZooEntry]:
    """Every zoo entry by name, checked field by field (``text``: a registry other than ours)."""
    if text is None:
        text = resources.files("srdistill.models").joinpath(ZOO_FILE).read_text()
    entries = json.loads(text).get("entries", {})
    return {name: _entry(name, record) for name, record in entries.items()}


def is_reference(value) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def entry(name: str, option: str = "teacher.ckpt") -> ZooEntry:
    zoo = load_registry()
    if name not in zoo:
        raise ZooError(f"{option}: {name!r} is not in the teacher zoo; one of {', '.join(zoo)}")
    return zoo[name]


def entry_for(reference: str, option: str = "teacher.ckpt") -> ZooEntry:
    """The entry a ``zoo:<name>`` reference names (a one-line error for an unknown name)."""
    return entry(reference[len(PREFIX) :], option)


def hub_file(item: ZooEntry) -> Path:
    """Where the file lives once fetched: torch's hub cache (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / item.file


def check_pin(pin, option: str = "teacher.ckpt") -> str | None:
    """The user's pin as lowercase hex, or ``None`` when unset: a pin is a file's whole
    SHA-256 (64 hex digits), so that a short or mistyped one can never pass for a check."""
    if pin is None or pin == "":
        return None
    if type(pin) is not str or not PIN.fullmatch(pin.strip()):
        hint = " (quote it: Hydra reads a number)" if type(pin) in (int, float) else ""
        raise ZooError(
            f"{_pin_option(option)}={str(pin)[:80]!r}: a pin is the file's full SHA-256, 64 hex "
            f"digits{hint}; print it with: sha256sum <file>"
        )
    return pin.strip().lower()


def expected_checksum(item: ZooEntry | None, pin, option: str = "teacher.ckpt") -> str | None:
    """What the file's SHA-256 must be (or start with): the published checksum, which a pin may
    only repeat or extend, never replace; the pin alone where nothing is published."""
    pin = check_pin(pin, option)
    published = item.checksum if item is not None else None
    if pin and published and not pin.startswith(published):
        raise ZooError(
            f"{_pin_option(option)}={pin} contradicts the SHA-256 published for zoo entry "
            f"{item.name} ({published}); a published checksum cannot be overridden: drop "
            f"{_pin_option(option)}"
        )
    return pin or published


def verify(path: str | Path, item: ZooEntry | None, pin=None, option: str = "teacher.ckpt") -> str:
    """The SHA-256 of ``path`` once it matches the entry's published checksum and the user's
    ``pin``; a mismatch or a zoo entry nobody vouches for is a one-line ``ZooError``."""
    expected = expected_checksum(item, pin, option)
    actual = file_sha256(path)
    if expected is None and item is not None:
        raise ZooError(
            f"{option}={path}: zoo entry {item.name} has no published checksum, so srdistill "
            f"cannot tell this file is the release; its SHA-256 is {actual}: if you trust it, pin "
            f"it with {_pin_option(option)}={actual}"
        )
    if expected is not None and not actual.startswith(expected):
        if item is None:
            what = _pin_option(option)
            fix = f"check the file, or the hash given to {what}"
        else:
            what, fix = f"zoo entry {item.name}", "delete the file and fetch it again"
        raise ZooError(
            f"{option}={path}: SHA-256 {actual} does not match {what} (expected "
            f"{expected}); refusing to load it: {fix}"
        )
    return actual


def _pin_option(option: str) -> str:
    if option.startswith("--"):  # a command-line flag (srdistill-upscale --ckpt): --sha256
        return "--sha256"
    return option.rsplit(".", 1)[0] + ".sha256" if "." in option else "sha256"


def resolve(
    reference: str, pin: str | None = None, option: str = "teacher.ckpt", download=None
) -> tuple[Path, str]:
    """A verified local file for ``zoo:<name>`` and its SHA-256, fetched into the hub cache when
    absent (``download(url, dst)``: torch's downloader unless a test passes another)."""
    item = entry_for(reference, option)
    expected_checksum(item, pin, option)  # a bad pin is refused before any download
    target = hub_file(item)
    if not target.is_file():
        _fetch(item, target, option, download or download_url_to_file)
    return target, verify(target, item, pin, option)


def verified_file(ckpt: str, pin=None, option: str = "ckpt") -> str:
    """``ckpt`` as a local file: ``zoo:<name>`` fetched and verified; a path checked against the
    user's pin when one is given (a missing file is left to the checkpoint reader's message)."""
    if is_reference(ckpt):
        return str(resolve(ckpt, pin, option)[0])
    if check_pin(pin, option) and Path(ckpt).is_file():
        verify(ckpt, None, pin, option)
    return ckpt


def _fetch(item: ZooEntry, target: Path, option: str, download) -> None:
    by_hand = f"put the file at {target} by hand, or give its path with {option}=PATH"
    if option.startswith("teacher"):
        by_hand += f" (teacher=zoo/{item.name} still verifies it)"
    if item.url is None:
        raise ZooError(
            f"{option}=zoo:{item.name}: {item.file} is published only inside "
            f"{item.archive_url}; download and unpack it, then {by_hand}"
        )
    _make_hub_folder(target.parent, item, option)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        download(item.url, str(partial), progress=False)
        if item.checksum:  # a damaged download never reaches the cache
            verify(partial, item, None, option)
        os.replace(partial, target)
    except ZooError:
        raise
    except Exception as err:  # noqa: BLE001 - no network, a proxy, a 404: one line for the user
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ZooError(
            f"{option}=zoo:{item.name}: cannot download {item.url} ({reason}); {by_hand}"
        ) from None
    finally:
        partial.unlink(missing_ok=True)


def _make_hub_folder(folder: Path, item: ZooEntry, option: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ZooError(
            f"{option}=zoo:{item.name}: cannot create torch's hub cache {folder} "
            f"({err.strerror or type(err).__name__}); set TORCH_HOME to a writable folder"
        ) from None


def markdown_table(zoo: dict[str, ZooEntry] | None = None) -> str:
    """The zoo as a markdown table: ``python -m srdistill.models.zoo`` prints the README's."""
    rows = [
        "| name | model | scale | Set5 PSNR (Y) | checksum | file |",
        "|---|---|---|---|---|---|",
    ]
    for item in (zoo or load_registry()).values():
        psnr = "–" if item.set5_psnr is None else f"{item.set5_psnr:.2f}"
        if item.set5_psnr is not None and item.set5_psnr_kind == "measured":
            psnr += " (measured)"
        check = "SHA-256" if item.sha256 else "prefix" if item.sha256_prefix else "pin it"
        link = f"[{item.file}]({item.url})"
        if item.url is None:
            link = f"{item.file} ([zip]({item.archive_url}))"
        rows.append(f"| `{item.name}` | {item.model} | x{item.scale} | {psnr} | {check} | {link} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
