#!/usr/bin/env bash
# Object-centred training crops for the ships model, measured by cross-validation over HRSID
# mini's scenes:
#   training/recipes/ships_object_crop.sh [OUT] [DATA]     (OUT=runs/ships_object_crop)
# The bundled Ships config trained with uniform crops (plain) and with half of its crops placed
# to hold one whole ship (data.augment.object_crop 0.5: objcrop), on the two folds of scenes of
# training/recipes/ships_paste_ablation.sh (every other sorted scene held out, 540 epochs), so
# every one of the 69 ships is scored by models that never saw its scene. Each fold is then
# scored through predict on 768 px tiles at NMS IoU 0.5 (the bundled settings), and on 256 px
# tiles (whether whole hulls in training make the large tile unnecessary), beside CA-CFAR
# (python -m sarmae_train.heldout_ships: AP, AP50, found / missed / false at confidence 0.3,
# box length over ship length), written to OUT/heldout-fold{0,1}-tile{768,256}.json.
# The plain runs are the plain runs of ships_paste_ablation.sh (same config, same seed): copy
# them into OUT to skip them. Finished runs are skipped; copies of the script on the same OUT
# share the runs (each is claimed with a lock): start one per core. About 40 min per run when
# two share the two cores of the development machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/ships_object_crop}
data=${2:-../shared/data}
cfg=training/configs/finetune_ships_bundled.yaml
training/recipes/encoder.sh runs/bundled "$data"
mkdir -p "$out"
for fold in 0 1; do
  for variant in plain objcrop; do
    run="$out/ships-$variant-s$fold"
    [ -f "$run/metrics.json" ] && continue
    exec {lock}>"$out/.ships-$variant-s$fold.lock"
    flock -n "$lock" || { exec {lock}>&-; continue; }  # another copy runs it
    rm -rf "$run"
    share=0
    [ "$variant" = objcrop ] && share=0.5
    .venv/bin/sarmae-train finetune --config "$cfg" \
      --init runs/bundled/pretrain/checkpoint.safetensors run.out_dir="$run" data.root="$data" \
      data.options.test_every=2 data.options.test_fold="$fold" optim.epochs=540 'eval.groups={}' \
      data.augment.object_crop="$share"
    exec {lock}>&-
  done
done
for fold in 0 1; do
  for variant in plain objcrop; do  # another copy may still be training one
    while [ ! -f "$out/ships-$variant-s$fold/metrics.json" ]; do sleep 30; done
  done
  for tile in 768 256; do
    echo "## fold $fold: $tile px tiles ($((tile / 4)) px overlap), NMS IoU 0.5"
    .venv/bin/python -m sarmae_train.heldout_ships --config "$cfg" \
      --model "plain=$out/ships-plain-s$fold/model.safetensors" \
      --model "objcrop=$out/ships-objcrop-s$fold/model.safetensors" --model cfar=cfar \
      --tile "$tile" --nms-iou 0.5 --out "$out/heldout-fold$fold-tile$tile.json" \
      data.root="$data" data.options.test_every=2 data.options.test_fold="$fold" 'eval.groups={}'
  done
done
