#!/usr/bin/env bash
# Variants of the bundled Ships config, measured by cross-validation over HRSID mini's scenes:
#   training/recipes/ships_study.sh OUT DATA SEEDS TILES NAME=[OVERRIDES]...
# e.g. training/recipes/ships_study.sh runs/ships_size_weight ../shared/data '0 1' 768 \
#        plain= size3=loss.size_weight=3.0
# Each variant is training/configs/finetune_ships_bundled.yaml with its overrides (key=value,
# several separated by spaces in one argument; none: the config as it is). Every variant is
# trained
# 1. on the two folds of scenes of training/recipes/ships_paste_ablation.sh (every other sorted
#    scene held out, 540 epochs: the bundled run's 1080 steps), once per seed in SEEDS
#    (run.seed), as OUT/ships-NAME-sFOLD (seed 0) or OUT/ships-NAME-sFOLD-seedS, so every one of
#    the 69 ships is scored by models that never saw its scene; each fold and seed is scored
#    through predict on each tile side in TILES (overlap a quarter) at NMS IoU 0.5, beside
#    CA-CFAR (python -m sarmae_train.heldout_ships: AP, AP50, found / missed / false at
#    confidence 0.3, box length over ship length): OUT/heldout-foldF[-seedS]-tileT.json;
# 2. on the bundled split (P0007 and P0015 held out, the bundled recipe's 360 epochs, seed 0)
#    as OUT/bundled-NAME, scored the same way at 768 px: OUT/heldout-bundled.json. A variant
#    without overrides there is the bundled model's own run (runs/bundled/ships) when it is
#    finished.
# Finished runs are skipped; copies of the script on the same OUT share the runs (each is
# claimed with a lock): start one per core. About 40 min per run when two share the two cores
# of the development machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 5 ] || { echo "usage: $0 OUT DATA SEEDS TILES NAME=[OVERRIDES]..." >&2; exit 2; }
out=$1
data=$2
read -ra seeds <<< "$3"
read -ra tiles <<< "$4"
shift 4
variants=("$@")
cfg=training/configs/finetune_ships_bundled.yaml
training/recipes/encoder.sh runs/bundled "$data"
mkdir -p "$out"
claim() {  # RUN: false when finished or another copy has it
  [ -f "$1/metrics.json" ] && return 1
  exec {lock}>"$1.lock"
  flock -n "$lock" || { exec {lock}>&-; return 1; }
  rm -rf "$1"
}
train() {  # RUN VARIANT [overrides...]: fine-tune the variant into RUN unless done or claimed
  local run=$1 overrides
  read -ra overrides <<< "${2#*=}"
  shift 2
  runs+=("$run")
  claim "$run" || return 0
  .venv/bin/sarmae-train finetune --config "$cfg" \
    --init runs/bundled/pretrain/checkpoint.safetensors run.out_dir="$run" data.root="$data" \
    "$@" "${overrides[@]}"
  exec {lock}>&-
}
suffix() { [ "$1" = 0 ] || echo "-seed$1"; }  # seed 0 keeps the names of earlier studies
runs=()
for fold in 0 1; do
  for seed in "${seeds[@]}"; do
    for variant in "${variants[@]}"; do
      train "$out/ships-${variant%%=*}-s$fold$(suffix "$seed")" "$variant" \
        data.options.test_every=2 data.options.test_fold="$fold" optim.epochs=540 \
        'eval.groups={}' run.seed="$seed"
    done
  done
done
bundled_models=()
for variant in "${variants[@]}"; do
  run="$out/bundled-${variant%%=*}"
  if [ -z "${variant#*=}" ] && [ -f runs/bundled/ships/metrics.json ]; then
    run=runs/bundled/ships
  else
    train "$run" "$variant"
  fi
  bundled_models+=(--model "${variant%%=*}=$run/model.safetensors")
done
for run in "${runs[@]}"; do  # another copy may still be training one
  while [ ! -f "$run/metrics.json" ]; do sleep 30; done
done
for fold in 0 1; do
  for seed in "${seeds[@]}"; do
    for tile in "${tiles[@]}"; do
      models=()
      for variant in "${variants[@]}"; do
        name=${variant%%=*}
        models+=(--model "$name=$out/ships-$name-s$fold$(suffix "$seed")/model.safetensors")
      done
      echo "## fold $fold, seed $seed: $tile px tiles ($((tile / 4)) px overlap), NMS IoU 0.5"
      .venv/bin/python -m sarmae_train.heldout_ships --config "$cfg" "${models[@]}" \
        --model cfar=cfar --tile "$tile" --nms-iou 0.5 \
        --out "$out/heldout-fold$fold$(suffix "$seed")-tile$tile.json" data.root="$data" \
        data.options.test_every=2 data.options.test_fold="$fold" 'eval.groups={}'
    done
  done
done
echo "## the bundled split (P0007, P0015): 768 px tiles, NMS IoU 0.5"
.venv/bin/python -m sarmae_train.heldout_ships --config "$cfg" "${bundled_models[@]}" \
  --model cfar=cfar --tile 768 --nms-iou 0.5 --out "$out/heldout-bundled.json" data.root="$data"
