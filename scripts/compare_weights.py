"""Which tensors differ between two weight files, by how much, and at which ConvLoRA rank.

python scripts/compare_weights.py $S/weights/span_tiny_ch26_x4.pth $S/weights/dscf_ch26_x4.pth \
    --lora conf/lora/lora.yaml

For every changed conv kernel: the rank at the largest gap of the change's spectrum in the
ConvLoRA view (a merged rank-r adapter on a k x k conv shows r*k there; srdistill.lora.spectrum),
the size of that gap (s_r / s_r+1), and with ``--lora`` the r*k the config gives that module.
The config is read as plain data (its ``targets``, or those of the config it names in
``defaults``), never instantiated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from omegaconf import OmegaConf

from srdistill.cli.common import exit_on_user_error
from srdistill.lora.inject import LoRASpec
from srdistill.lora.spectrum import update_rank
from srdistill.models.checkpoint import read_state_dict


def lora_targets(path: Path, seen: tuple[Path, ...] = ()) -> list[dict]:
    """The ``targets`` of a conf/lora YAML file, following ``defaults`` to sibling files."""
    if not path.is_file():
        raise FileNotFoundError(f"--lora {path}: no such file; give a conf/lora/*.yaml")
    if path in seen:
        raise ValueError(f"--lora {seen[0]}: its defaults loop back to {path.name}")
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if not isinstance(cfg, dict):
        raise ValueError(f"--lora {path}: not a mapping of lora options")
    if cfg.get("targets"):
        return list(cfg["targets"])
    for parent in cfg.get("defaults") or []:
        if isinstance(parent, str) and parent != "_self_":
            return lora_targets(path.parent / f"{parent}.yaml", (*seen, path))
    raise ValueError(f"--lora {path}: no targets in it or in the config its defaults name")


def configured(spec: LoRASpec | None, key: str, kernel: torch.Tensor) -> str:
    """r*k of the adapter the spec puts on the module holding ``key`` (its ``.weight``)."""
    if spec is None:
        return ""
    module, _, leaf = key.rpartition(".")
    rank_alpha = spec.match(module) if leaf == "weight" else None
    if rank_alpha is None:
        return "-"
    r = rank_alpha["rank"]
    return f"{r * kernel.shape[-1]} (r {r})"


def rank_cells(delta: torch.Tensor) -> tuple[str, str]:
    gap = update_rank(delta) if delta.dim() == 4 else None
    if gap is None:
        return "", ""
    return f"{gap.rank} of {gap.possible}", f"{gap.ratio:.3g}"


def comparison_rows(before: dict, after: dict, changed: float, spec: LoRASpec | None):
    """(tensor, relative change, rank at gap, gap ratio, configured r*k) per changed tensor."""
    for key, old in before.items():
        delta = after[key].double() - old.double()
        relative = float(delta.norm() / old.double().norm().clamp_min(1e-30))
        if relative > changed:
            yield (key, f"{relative:.2e}", *rank_cells(delta), configured(spec, key, old))


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--changed", type=float, default=1e-4, help="relative change threshold")
    parser.add_argument("--lora", type=Path, help="a conf/lora/*.yaml: show its r*k per tensor")
    args = parser.parse_args()
    spec = LoRASpec(lora_targets(args.lora)) if args.lora else None
    before, after = read_state_dict(args.before), read_state_dict(args.after)
    if set(before) != set(after):
        raise ValueError(f"the files hold different keys: {sorted(set(before) ^ set(after))[:4]}")
    rows = list(comparison_rows(before, after, args.changed, spec))
    print(
        "| tensor | relative change | rank at largest gap (of max) | gap ratio | configured r*k |\n"
        "|---|---|---|---|---|"
    )
    for row in rows:
        print("| " + " | ".join(row) + " |")
    unchanged = [k for k in before if k not in {row[0] for row in rows}]
    print(f"\n{len(unchanged)} tensor(s) changed by at most {args.changed:g} (relative): ", end="")
    print(", ".join(unchanged) if unchanged else "none")


if __name__ == "__main__":
    main()
