#!/usr/bin/env bash
# Chooses the module.balance target of the balanced mini Tab. 3 (docs/RESULTS.md) on Set14 alone:
# seed 0, every target in TARGETS on KD and the feature-KD baselines, each arm validated on Set14
# only (the table's reported sets, Set5 and Urban100, are never computed here), then prints each
# target's Set14 gain over scratch and the target with the highest mean gain.
#   S=../shared bash scripts/balance_target_pilot.sh [OUT]
# Takes scripts/mcad_mini_tab3.sh's variables (EXPERIMENT, JOBS, PYTHON, ...).
set -euo pipefail
OUT=${1:-outputs/balance_target_pilot}
TARGETS=${TARGETS:-0.1 0.3 1}
METHODS=${METHODS:-kd fitnet at rkd fakd}
HERE=$(dirname "$0")
export EXTRA_ARGS="${EXTRA_ARGS:-} val.sets=[Set14]" SEEDS=0 REPORT=true
METHODS=scratch bash "$HERE/mcad_mini_tab3.sh" "$OUT/reference"
for target in $TARGETS; do
  METHODS=$METHODS BALANCE=$target bash "$HERE/mcad_mini_tab3.sh" "$OUT/target$target"
done
${PYTHON:-python} - "$OUT" "$METHODS" $TARGETS <<'PY'
import json
import statistics
import sys
from pathlib import Path

out, methods, targets = Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3:]


def set14(path: Path) -> float:
    return json.loads(path.read_text())["val"]["val/Set14/psnr_y"]


reference = set14(out / "reference/scratch/seed0/results.json")
print(f"Set14 PSNR gain over scratch ({reference:.3f} dB), seed 0")
print("target  " + "  ".join(f"{m:>7}" for m in methods) + "     mean")
means = {}
for target in targets:
    gains = [set14(out / f"target{target}/{m}/seed0/results.json") - reference for m in methods]
    means[target] = statistics.mean(gains)
    print(f"{target:<6}  " + "  ".join(f"{g:+7.3f}" for g in gains) + f"  {means[target]:+7.3f}")
print(f"chosen target: {max(means, key=means.get)}")
PY
