#!/usr/bin/env bash
# Rebuilds the bundled Ships model from the real data in ../shared/data (or DATA):
#   training/recipes/ships.sh [OUT] [DATA]      (default OUT=runs/bundled, DATA=../shared/data)
# 1. the SARMAE encoder of training/recipes/water.sh (pretrained once, shared),
# 2. fine-tuning for ship detection on HRSID (whole scenes P0007 and P0015 held out), scored
#    there with AP50, COCO AP and the ships found, missed and falsely reported at the model's
#    confidence, per scene type, beside CA-CFAR,
# 3. the default confidence: the best-F1 operating point on the training tiles (never chosen
#    on the held-out ones),
# 4. export to sarmae_core/models/bundled/ships.onnx, the held-out table through predict
#    (model and CA-CFAR), a picture of the offshore held-out case, and the model card ships.md.
source "$(dirname "$0")/common.sh" "$@"
cfg=training/configs/finetune_ships_bundled.yaml
finetune_once ships finetune_ships_bundled
$train evaluate --config "$cfg" --checkpoint "$out/ships/model.safetensors" \
  --out "$out/ships/metrics_train.json" data.root="$data" data.test_split=train
conf=$(.venv/bin/python -c "import json, sys; \
print(round(json.load(open(sys.argv[1]))['calibration']['best_f1']['threshold'], 2))" \
  "$out/ships/metrics_train.json")
.venv/bin/sarmae export "$out/ships/model.safetensors" -o "$bundled/ships.onnx" --overwrite \
  --tile 256 --overlap 64 --name ships --confidence "$conf" \
  --licence "research use, under the terms of its training data (HRSID: GPL-3.0; see ships.md)" \
  --training-data "HRSID mini subset (Wei et al., IEEE Access 2020, GPL-3.0; Sentinel-1B, TerraSAR-X, TanDEM-X at 0.5-3 m), boxes from ship masks; encoder pretrained on ETCI 2021, OMBRIA, MSTAR and a pyroSAR Sentinel-1 raster"
heldout="python -m training.heldout_ships --config $cfg --model ships=$bundled/ships.onnx --model cfar=cfar --out $out/ships/heldout.json data.root=$data"
.venv/bin/$heldout
# The offshore held-out case (long ships; not georeferenced: pixel space): input | boxes
tile="$data/hrsid_mini/mini_test/images/P0007_3000_3800_1800_2600.jpg"
tmp=$(mktemp -d)
.venv/bin/sarmae predict ships "$tile" -q -o "$tmp/s.gpkg" --units amplitude --bands 1 \
  --allow-optical
.venv/bin/python -c "from sarmae_core.inference.quicklook import boxes_from_gpkg, write_quicklook as w; \
w('$tile', 'docs/ships_offshore.png', 'amplitude', boxes_px=boxes_from_gpkg('$tmp/s.gpkg', '$tile'), \
  max_side=500, overwrite=True, side_by_side=True)"
rm -rf "$tmp"
.venv/bin/python -m training.model_card ships --out "$bundled/ships.md" \
  --command "training/recipes/ships.sh $out $data" \
  --onnx "$bundled/ships.onnx" --pretrain "$out/pretrain" --finetune "$out/ships" \
  --eval "HRSID scenes P0007 and P0015 (held out)=$out/ships/metrics.json" \
  --heldout "HRSID held out=$out/ships/heldout.json" --heldout-command "$heldout" \
  --data-used HRSID ETCI OMBRIA MSTAR pyroSAR \
  --picture ../../../docs/ships_offshore.png --picture-title "The offshore held-out case" \
  --picture-caption "HRSID tile P0007_3000_3800_1800_2600 (held out; Wei et al. 2020, GPL-3.0): two ships of 71 and 85 px on open sea; left the tile, right the ships found at the default confidence (amber boxes), made by training/recipes/ships.sh." \
  --limit "Trained on 30 HRSID tiles (0.5-3 m pixels, zoomed 0.5-2x in training); scenes with coarser pixels, such as Sentinel-1 IW GRD at 10-20 m, are refused (ships there are a few pixels long): use the CA-CFAR detector (sarmae predict ships --detector cfar)." \
  --limit "The held-out set is small (6 tiles, 10 ships, one inshore tile): its figures carry an uncertainty of several points." \
  --limit "Ships touching each other in the masks became one box in training, so moored ships side by side may come out as one detection." \
  --limit "Bright fixed targets at sea (platforms, buoys, wind turbines) and land near the coast are easily reported as ships; use an area of interest on open water."
echo "bundled model: $bundled/ships.onnx, card: $bundled/ships.md"
