#!/usr/bin/env bash
# MCAD-KD's terms one at a time from a shared warm start (docs/RESULTS.md, "MCAD-KD at CPU scale").
#   S=../shared bash scripts/mcad_warm_start.sh [OUT]
# (about 2.5 hours on a 2-core CPU; ONLY=seed0 and ONLY=seed1 in two shells share the cores)
# Every arm starts from the same warm-start weights and uses the same data order (seed), schedule
# and iterations (conf/experiment/mcad_warm_start.yaml); only the loss differs. Arms with teacher
# terms log the per-term gradient share every 20 iterations (module.grad_share_every).
set -euo pipefail
S=${S:-../shared}
OUT=${1:-outputs/mcad_warm_start}
PY=${PYTHON:-python}
COMMON=(experiment=mcad_warm_start data.root=$S/data/train/BSD68 val.root=$S/data/benchmarks
        teacher.ckpt=$S/weights/span_ch28_x4.pth)
WARM=$OUT/warm_start
if [ ! -f "$WARM/warm_start.pth" ]; then
  # the shared starting point: 3000 iterations of L1 alone at a constant learning rate
  $PY train.py "${COMMON[@]}" loss=scratch seed=0 trainer.max_steps=3000 \
    trainer.val_check_interval=3000 'scheduler.milestones=[100000]' hydra.run.dir=$WARM
  $PY export.py ckpt=$WARM/checkpoints/last.ckpt out=$WARM/warm_start.pth
fi
NO_ADV=loss.terms.adv.weight=0
NO_CONT=loss.terms.cont.weight=0
MEAN=loss.terms.cont.loss.patch_reduction=mean
SHARE=module.grad_share_every=20
arm() {  # arm NAME SEED OVERRIDES...
  local name=$1 seed=$2; shift 2
  local dir=$OUT/$name/seed$seed
  [ -f "$dir/results.json" ] && return 0
  # ONLY=regex runs a subset (e.g. two shells on two cores: ONLY='seed0' and ONLY='seed1')
  [[ "$name/seed$seed" =~ ${ONLY:-.} ]] || return 0
  $PY train.py "${COMMON[@]}" student.ckpt=$WARM/warm_start.pth seed=$seed "$@" hydra.run.dir=$dir
}
for seed in 0 1; do
  arm b_pixel $seed loss=mcad $NO_CONT $NO_ADV $SHARE                   # 3.0 rec + 0.5 resp
  arm c_cont_mean $seed loss=mcad $NO_ADV $MEAN $SHARE                  # b + contrastive, mean over windows
  arm e_cont_frozen $seed loss=mcad $NO_ADV $MEAN loss.terms.cont.loss.learn_heads=false $SHARE
  arm g_mcad $seed loss=mcad $MEAN $SHARE                               # the full loss
done
arm a_scratch 0 loss=scratch                                             # L1 alone, weight 1
arm d_cont_sum 0 loss=mcad $NO_ADV $SHARE                                # b + contrastive, Eq. 4's sum
arm f_adv 0 loss=mcad $NO_CONT $SHARE                                    # b + adversarial
arm h_kd 0 loss=kd $SHARE                                                # KD 1 / 1
