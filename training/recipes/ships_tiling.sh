#!/usr/bin/env bash
# The Ships model's inference settings, measured through predict by cross-validation over
# HRSID mini's scenes: tile side (with a quarter of it as overlap) and the NMS IoU.
#   training/recipes/ships_tiling.sh [OUT] [DATA]     (OUT=runs/ships_paste_ablation)
# Uses the two plain fold models of training/recipes/ships_paste_ablation.sh (every other
# sorted scene held out; it trains them when missing), so every one of the 69 ships is scored by
# a model that never saw its scene. Each setting runs python -m sarmae_train.heldout_ships on
# each fold (AP, AP50, found / missed / false at confidence 0.3) and writes
# OUT/tiling/fold{0,1}-tile{T}-nms{N}.json, after CA-CFAR's row on the same tiles
# (OUT/tiling/fold{0,1}-cfar.json); the tables are printed as they come.
# About 20 s a setting and fold on one core.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/ships_paste_ablation}
data=${2:-../shared/data}
for fold in 0 1; do
  [ -f "$out/ships-plain-s$fold/model.safetensors" ] || training/recipes/ships_paste_ablation.sh "$out" "$data"
done
mkdir -p "$out/tiling"
for fold in 0 1; do  # the classic baseline on the same tiles (CA-CFAR, its documented defaults)
  echo "## fold $fold, CA-CFAR"
  .venv/bin/python -m sarmae_train.heldout_ships --config training/configs/finetune_ships_bundled.yaml \
    --model cfar=cfar --out "$out/tiling/fold$fold-cfar.json" data.root="$data" \
    data.options.test_every=2 data.options.test_fold="$fold" 'eval.groups={}'
done
for setting in "256 0.3" "256 0.5" "512 0.5" "768 0.3" "768 0.5" "1024 0.5"; do
  set -- $setting
  for fold in 0 1; do
    echo "## fold $fold, tile $1 px (overlap $(($1 / 4))), NMS IoU $2"
    .venv/bin/python -m sarmae_train.heldout_ships --config training/configs/finetune_ships_bundled.yaml \
      --model "fold$fold=$out/ships-plain-s$fold/model.safetensors" --tile "$1" --nms-iou "$2" \
      --out "$out/tiling/fold$fold-tile$1-nms$2.json" data.root="$data" \
      data.options.test_every=2 data.options.test_fold="$fold" 'eval.groups={}'
  done
done
