#!/usr/bin/env bash
# A CPU-scale MCAD-KD Tab. 3 (docs/RESULTS.md, "A mini Tab. 3"): every applicable method x 3 seeds
# from one warm-start student, then the table beside the paper's with srdistill-report.
#   S=../shared bash scripts/mcad_mini_tab3.sh [OUT]
# ONLY=regex runs a subset (e.g. ONLY='seed0' and ONLY='seed[12]' in two shells share 2 cores);
# METHODS='kd fakd' picks methods. The warm start is the one of scripts/mcad_warm_start.sh (same
# command, same folder), made first if absent.
set -euo pipefail
S=${S:-../shared}
OUT=${1:-outputs/mcad_mini_tab3}
PY=${PYTHON:-python}
WARM=${WARM:-outputs/mcad_warm_start/warm_start}
COMMON=(experiment=mcad_mini_tab3 data.root=$S/data/train/BSD68 val.root=$S/data/benchmarks
        teacher.ckpt=$S/weights/span_ch28_x4.pth)
if [ ! -f "$WARM/warm_start.pth" ]; then
  # the shared starting point: 3000 iterations of L1 alone at a constant learning rate
  $PY train.py experiment=mcad_warm_start data.root=$S/data/train/BSD68 val.root=$S/data/benchmarks \
    teacher.ckpt=$S/weights/span_ch28_x4.pth loss=scratch seed=0 trainer.max_steps=3000 \
    trainer.val_check_interval=3000 'scheduler.milestones=[100000]' hydra.run.dir=$WARM
  $PY export.py ckpt=$WARM/checkpoints/last.ckpt out=$WARM/warm_start.pth
fi
# csd: K = 8 negatives (the paper's 10 needs a batch of 10; this protocol's batch is 8)
declare -A EXTRA=([csd]="loss.terms.cont.loss.num_negatives=8")
for method in ${METHODS:-scratch kd fitnet at rkd fakd csd dukd mipkd mcad}; do
  for seed in 0 1 2; do
    dir=$OUT/$method/seed$seed
    [ -f "$dir/results.json" ] && continue
    [[ "$method/seed$seed" =~ ${ONLY:-.} ]] || continue
    $PY train.py "${COMMON[@]}" loss=$method seed=$seed student.ckpt=$WARM/warm_start.pth \
      ${EXTRA[$method]:-} hydra.run.dir=$dir
  done
done
${REPORT:-srdistill-report} "$OUT" --paper mcad_tab3 --out "$OUT/report"
