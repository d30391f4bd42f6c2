"""Does an exported (merged) student cost exactly what its base network costs?

Loads two weight files into the same architecture (e.g. SPAN-Tiny as released and the DSCLoRA
export), checks parameter counts, and measures their latency ratio call by call, alternating, in one
process. Target: parameters equal, |ratio - 1| <= 2%.

python benchmarks/exported_latency.py --model span_ch26 \\
    --reference ../shared/weights/span_tiny_ch26_x4.pth --candidate outputs/dscf_cpu.pth
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from srdistill.eval.cost import count_parameters, latency_ratio
from srdistill.models.checkpoint import load_weights

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def load(model_name: str, path: str) -> torch.nn.Module:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="efficiency", overrides=[f"model={model_name}"])
    return load_weights(instantiate(cfg.model), path, model_name).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="span_ch26")
    parser.add_argument("--reference", required=True)
    parser.add_argument("--candidate", required=True)
    parser.add_argument("--hw", type=int, nargs=2, default=[256, 256], help="LR input size")
    parser.add_argument("--calls", type=int, default=100, help="forwards per model")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tolerance", type=float, default=0.02)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reference, candidate = load(args.model, args.reference), load(args.model, args.candidate)
    result = latency_ratio(reference, candidate, tuple(args.hw), args.calls)
    result.update(
        reference_params=count_parameters(reference),
        candidate_params=count_parameters(candidate),
        threads=torch.get_num_threads(),
    )
    result["within_tolerance"] = (
        result["reference_params"] == result["candidate_params"]
        and abs(result["ratio"] - 1.0) <= args.tolerance
    )
    print(json.dumps(result, indent=2))
    raise SystemExit(0 if result["within_tolerance"] else 1)


if __name__ == "__main__":
    main()
