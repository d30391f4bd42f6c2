#!/usr/bin/env bash
# DSCLoRA at CPU scale (docs/RESULTS.md): a learning-rate sweep on seed 0, then three seeds at the
# chosen rate, each with its control (same adapters, no teacher terms); every network is exported
# (merged and averaged, what ships) and evaluated on Set5, Set14 and Urban100.
#   S=../shared bash scripts/dsclora_cpu.sh sweep            (three runs, about 40 minutes)
#   S=../shared LR=5e-5 bash scripts/dsclora_cpu.sh seeds    (three runs with controls, ~1 hour)
set -euo pipefail
S=${S:-../shared}
OUT=${OUT:-outputs/dsclora_cpu}
PY=${PYTHON:-python}
COMMON=(experiment=dsclora_cpu student.ckpt=$S/weights/span_tiny_ch26_x4.pth
        teacher.ckpt=$S/weights/span_ch28_x4.pth data.root=$S/data/train/BSD68
        val.root=$S/data/benchmarks)
SETS='data.sets=[Set5,Set14,Urban100]'

evaluate() {  # evaluate CHECKPOINT DIR: export what ships, score it
  $PY export.py ckpt=$1 out=$2/deployed.pth
  $PY eval.py model=span_ch26 ckpt=$2/deployed.pth data.root=$S/data/benchmarks "$SETS" \
    out=$2/deployed_eval.json
}

case ${1:-} in
  sweep)
    for lr in 1e-5 2e-5 5e-5; do
      d=$OUT/lr_sweep/lr$lr
      [ -f $d/deployed_eval.json ] && continue
      $PY train.py "${COMMON[@]}" seed=0 optimizer.lr=$lr compare_without_teacher=false \
        final_table=false 'val.sets=[Set5]' hydra.run.dir=$d
      evaluate $d/checkpoints/last.ckpt $d
    done ;;
  seeds)
    for seed in 0 1 2; do
      d=$OUT/seeds/seed$seed
      [ -f $d/without_teacher/deployed_eval.json ] && continue
      $PY train.py "${COMMON[@]}" seed=$seed optimizer.lr=${LR:?set LR} final_table=false \
        'val.sets=[Set5]' hydra.run.dir=$d
      evaluate $d/checkpoints/last.ckpt $d
      evaluate $d/without_teacher/checkpoints/last.ckpt $d/without_teacher
    done
    $PY eval.py model=span_ch26 ckpt=$S/weights/span_tiny_ch26_x4.pth data.root=$S/data/benchmarks \
      "$SETS" out=$OUT/span_tiny.json ;;
  *) echo "usage: $0 sweep|seeds" >&2; exit 2 ;;
esac
