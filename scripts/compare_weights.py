"""Which tensors differ between two weight files, and by how much (relative L2 change).

python scripts/compare_weights.py $S/weights/span_tiny_ch26_x4.pth $S/weights/dscf_ch26_x4.pth
"""

from __future__ import annotations

import argparse

from srdistill.models.checkpoint import read_state_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--changed", type=float, default=1e-4, help="relative change threshold")
    args = parser.parse_args()
    before, after = read_state_dict(args.before), read_state_dict(args.after)
    if set(before) != set(after):
        raise SystemExit(f"the files hold different keys: {sorted(set(before) ^ set(after))[:4]}")
    print(f"| tensor | relative change | changed (> {args.changed:g}) |\n|---|---|---|")
    for key, old in before.items():
        delta = (after[key].double() - old.double()).norm() / old.double().norm().clamp_min(1e-30)
        print(f"| {key} | {delta.item():.2e} | {'yes' if delta > args.changed else 'no'} |")


if __name__ == "__main__":
    main()
