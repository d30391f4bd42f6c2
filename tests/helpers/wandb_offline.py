"""Reading back an offline W&B run folder (``<run_dir>/wandb/offline-run-*``).

The installed wandb writes its records to ``run-<id>.wandb`` only (no config.yaml or
wandb-summary.json offline) and has no reader for it, so this reads the file directly: a
LevelDB-style log (a 7-byte ``:W&B`` header, 32 KiB blocks of chunks with a 7-byte header: CRC,
little-endian length, kind) of ``wandb_internal_pb2.Record`` protobufs, the format ``wandb sync``
uploads.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

BLOCK = 32 * 1024
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    """Every ``Record`` in a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = 7, b""
    while pos + CHUNK_HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK_HEADER:  # block trailer: padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        if kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        pending += data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        pos += CHUNK_HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _set(target: dict, item) -> None:
    """One config/summary/history item: ``key`` or the ``nested_key`` path, JSON value."""
    path = list(item.nested_key) or [item.key]
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = json.loads(item.value_json)


@dataclass
class OfflineRun:
    folder: Path
    run: object = None  # the RunRecord: name, tags, group, job_type
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    artifacts: list = field(default_factory=list)  # ArtifactRecords
    exit_code: int | None = None

    def media(self, key: str) -> list[dict]:
        """The logged media entries of ``key`` (images, tables), in history order."""
        return [row[key] for row in self.history if key in row]

    def series(self, key: str, step: str = "trainer/global_step") -> list[tuple]:
        """``(step, value)`` of every history row holding ``key``."""
        return [(row.get(step), row[key]) for row in self.history if key in row]


def read_offline_run(run_dir: Path) -> OfflineRun:
    """The one offline run below ``run_dir/wandb``."""
    folders = sorted((Path(run_dir) / "wandb").glob("offline-run-*"))
    assert len(folders) == 1, folders
    run = OfflineRun(folders[0])
    for record in records(next(folders[0].glob("run-*.wandb"))):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run = record.run
            for item in record.run.config.update:
                _set(run.config, item)
        elif kind == "config":
            for item in record.config.update:
                _set(run.config, item)
        elif kind == "summary":
            for item in record.summary.update:
                _set(run.summary, item)
        elif kind == "history":
            row: dict = {}
            for item in record.history.item:
                _set(row, item)
            run.history.append(row)
        elif kind == "artifact":
            run.artifacts.append(record.artifact)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run
