#!/usr/bin/env bash
# Object-centred training crops for the ships model, measured by cross-validation over HRSID
# mini's scenes:
#   training/recipes/ships_object_crop.sh [OUT] [DATA]     (OUT=runs/ships_object_crop)
# The bundled Ships config trained with uniform crops (plain) and with a quarter or half of its
# crops placed to hold one whole ship (data.augment.object_crop 0.25: objcrop25, 0.5: objcrop),
# 1. on the two folds of scenes of training/recipes/ships_paste_ablation.sh (every other sorted
#    scene held out, 540 epochs), so every one of the 69 ships is scored by models that never
#    saw its scene; each fold is scored through predict on 768 px tiles at NMS IoU 0.5 (the
#    bundled settings) and on 256 px tiles, beside CA-CFAR (python -m sarmae_train.heldout_ships:
#    AP, AP50, found / missed / false at confidence 0.3, box length over ship length), written
#    to OUT/heldout-fold{0,1}-tile{768,256}.json;
# 2. on the bundled split (P0007 and P0015 held out, the bundled recipe's 360 epochs), scored
#    the same way beside the bundled model's own run (runs/bundled/ships, uniform crops; when
#    it is missing, the same config is trained here as OUT/bundled-ships-0):
#    OUT/heldout-bundled.json.
# The plain fold runs are the plain runs of ships_paste_ablation.sh (same config, same seed):
# copy them into OUT to skip them. Finished runs are skipped; copies of the script on the same
# OUT share the runs (each is claimed with a lock): start one per core. About 40 min per run
# when two share the two cores of the development machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/ships_object_crop}
data=${2:-../shared/data}
cfg=training/configs/finetune_ships_bundled.yaml
training/recipes/encoder.sh runs/bundled "$data"
mkdir -p "$out"
claim() {  # RUN: false when finished or another copy has it
  [ -f "$1/metrics.json" ] && return 1
  exec {lock}>"$1.lock"
  flock -n "$lock" || { exec {lock}>&-; return 1; }
  rm -rf "$1"
}
runs=()
for fold in 0 1; do
  for variant in plain:0 objcrop25:0.25 objcrop:0.5; do
    run="$out/ships-${variant%%:*}-s$fold"
    runs+=("$run")
    claim "$run" || continue
    .venv/bin/sarmae-train finetune --config "$cfg" \
      --init runs/bundled/pretrain/checkpoint.safetensors run.out_dir="$run" data.root="$data" \
      data.options.test_every=2 data.options.test_fold="$fold" optim.epochs=540 'eval.groups={}' \
      data.augment.object_crop="${variant#*:}"
    exec {lock}>&-
  done
done
# the bundled split with uniform crops: the bundled model's own run when there is one
uniform=runs/bundled/ships
shares="25 50"
[ -f "$uniform/metrics.json" ] || { uniform="$out/bundled-ships-0"; shares="0 25 50"; }
for share in $shares; do
  run="$out/bundled-ships-$share"
  runs+=("$run")
  claim "$run" || continue
  .venv/bin/sarmae-train finetune --config "$cfg" \
    --init runs/bundled/pretrain/checkpoint.safetensors run.out_dir="$run" data.root="$data" \
    data.augment.object_crop="$(awk "BEGIN {print $share / 100}")"
  exec {lock}>&-
done
for run in "${runs[@]}"; do  # another copy may still be training one
  while [ ! -f "$run/metrics.json" ]; do sleep 30; done
done
for fold in 0 1; do
  for tile in 768 256; do
    echo "## fold $fold: $tile px tiles ($((tile / 4)) px overlap), NMS IoU 0.5"
    .venv/bin/python -m sarmae_train.heldout_ships --config "$cfg" \
      --model "plain=$out/ships-plain-s$fold/model.safetensors" \
      --model "objcrop25=$out/ships-objcrop25-s$fold/model.safetensors" \
      --model "objcrop=$out/ships-objcrop-s$fold/model.safetensors" --model cfar=cfar \
      --tile "$tile" --nms-iou 0.5 --out "$out/heldout-fold$fold-tile$tile.json" \
      data.root="$data" data.options.test_every=2 data.options.test_fold="$fold" 'eval.groups={}'
  done
done
echo "## the bundled split (P0007, P0015): 768 px tiles, NMS IoU 0.5"
.venv/bin/python -m sarmae_train.heldout_ships --config "$cfg" \
  --model "bundled=$uniform/model.safetensors" \
  --model "objcrop25=$out/bundled-ships-25/model.safetensors" \
  --model "objcrop=$out/bundled-ships-50/model.safetensors" --model cfar=cfar \
  --out "$out/heldout-bundled.json" data.root="$data"
