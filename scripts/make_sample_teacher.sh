#!/usr/bin/env bash
# Re-create the shipped sample teacher (src/srdistill/assets/sample_teacher_edsr_x4.safetensors),
# an EDSR (48 channels, 8 blocks) trained from scratch with L1 on photos bundled in scikit-image:
#   1. 2000 steps on the five sample training photos (experiment=sample_teacher);
#   2. 3000 steps at lr 2e-4 on those and seven more bundled photos (SampleTeacherTrain: a colour
#      street scene, six gray textures and scenes), never the validation photos;
#   3. 800 steps at lr 4e-5 on the same set;
# then the last weights are written as a plain safetensors state dict. Single-threaded steps
# (OMP_NUM_THREADS=1, no loader processes) run fastest on a 2-core machine; about 45 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUN=${RUN:-outputs/sample_teacher}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
weights() {  # a run's last student weights -> a safetensors file
    "$PY" - "$1" "$2" <<'PYEOF'
import sys
from safetensors.torch import save_file
from srdistill.models.checkpoint import network_weights_from_run
weights = {k: v.contiguous() for k, v in network_weights_from_run(sys.argv[1]).items()}
save_file(weights, sys.argv[2])
print(f"wrote {sys.argv[2]} ({len(weights)} tensors)")
PYEOF
}
TEACHER_SET=$("$PY" -c "from srdistill.data.samples import materialize_samples, TEACHER_SET; print(materialize_samples(with_teacher_set=True) / TEACHER_SET / 'HR')")
"$PY" train.py experiment=sample_teacher hydra.run.dir="$RUN/1" final_table=false
weights "$RUN/1/checkpoints/last.ckpt" "$RUN/1.safetensors"
EXTRA=(experiment=sample_teacher data=folder data.root="$TEACHER_SET" data.train.repeat=40
       +data.train.keep_in_memory=true num_workers=0 final_table=false
       "scheduler.milestones=[100000]" trainer.val_check_interval=500 trainer.enable_progress_bar=false)
"$PY" train.py "${EXTRA[@]}" student.ckpt="$RUN/1.safetensors" optimizer.lr=2e-4 \
    trainer.max_steps=3000 hydra.run.dir="$RUN/2"
weights "$RUN/2/checkpoints/last.ckpt" "$RUN/2.safetensors"
"$PY" train.py "${EXTRA[@]}" student.ckpt="$RUN/2.safetensors" optimizer.lr=4e-5 \
    trainer.max_steps=800 hydra.run.dir="$RUN/3"
weights "$RUN/3/checkpoints/last.ckpt" src/srdistill/assets/sample_teacher_edsr_x4.safetensors
