#!/usr/bin/env bash
# Re-create the shipped sample teacher (src/srdistill/assets/sample_teacher_edsr_x4.safetensors):
# an EDSR trained from scratch with L1 on the embedded sample photos (about 10 minutes on 2 CPU
# cores), then its weights written as a plain safetensors state dict.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUN=${RUN:-outputs/sample_teacher}
"$PY" train.py experiment=sample_teacher hydra.run.dir="$RUN" final_table=false
"$PY" - "$RUN/checkpoints/last.ckpt" <<'PYEOF'
import sys
from safetensors.torch import save_file
from srdistill.models.checkpoint import network_weights_from_run
from srdistill.models.pretrained import SAMPLE_TEACHER_FILE
weights = {k: v.contiguous() for k, v in network_weights_from_run(sys.argv[1]).items()}
save_file(weights, f"src/srdistill/assets/{SAMPLE_TEACHER_FILE}")
print(f"wrote src/srdistill/assets/{SAMPLE_TEACHER_FILE} ({len(weights)} tensors)")
PYEOF
