"""Which tensors differ between two weight files, and by how much (relative L2 change).

python scripts/compare_weights.py $S/weights/span_tiny_ch26_x4.pth $S/weights/dscf_ch26_x4.pth
"""

from __future__ import annotations

import argparse

import torch

from srdistill.models.checkpoint import read_state_dict


def convlora_rank(delta: torch.Tensor, rel_tol: float = 1e-3) -> str:
    """Numerical rank of a conv kernel change viewed as ConvLoRA's (C_out*k, C_in*k) matrix."""
    if delta.dim() != 4:
        return ""
    c_out, c_in, k, _ = delta.shape
    singular = torch.linalg.svdvals(delta.reshape(c_out * k, c_in * k))
    if singular[0] == 0:
        return "0"
    return f"{int((singular > rel_tol * singular[0]).sum())} of {min(c_out, c_in) * k}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--changed", type=float, default=1e-4, help="relative change threshold")
    args = parser.parse_args()
    before, after = read_state_dict(args.before), read_state_dict(args.after)
    if set(before) != set(after):
        raise SystemExit(f"the files hold different keys: {sorted(set(before) ^ set(after))[:4]}")
    print(
        f"| tensor | relative change | changed (> {args.changed:g}) | rank of the change |\n"
        "|---|---|---|---|"
    )
    for key, old in before.items():
        delta = after[key].double() - old.double()
        relative = delta.norm() / old.double().norm().clamp_min(1e-30)
        changed = relative > args.changed
        rank = convlora_rank(delta) if changed else ""
        print(f"| {key} | {relative.item():.2e} | {'yes' if changed else 'no'} | {rank} |")


if __name__ == "__main__":
    main()
