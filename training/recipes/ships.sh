#!/usr/bin/env bash
# Rebuilds the bundled Ships model from the real data in ../shared/data (or DATA):
#   training/recipes/ships.sh [OUT] [DATA]      (default OUT=runs/bundled, DATA=../shared/data)
# 1. the SARMAE encoder of training/recipes/water.sh (pretrained once, shared),
# 2. fine-tuning for ship detection on HRSID (scenes P0007 and P0015 held out), scored there
#    with AP50, COCO AP and the ships found, missed and falsely reported at the model's
#    confidence,
# 3. export to sarmae_core/models/bundled/ships.onnx and its model card ships.md.
source "$(dirname "$0")/common.sh" "$@"
finetune_once ships finetune_ships_bundled
.venv/bin/sarmae export "$out/ships/model.safetensors" -o "$bundled/ships.onnx" --overwrite \
  --tile 256 --overlap 32 --name ships \
  --licence "research use, under the terms of its training data (HRSID: GPL-3.0; see ships.md)" \
  --training-data "HRSID mini subset (Wei et al., IEEE Access 2020, GPL-3.0; Sentinel-1B, TerraSAR-X, TanDEM-X at 0.5-3 m), boxes from ship masks; encoder pretrained on ETCI 2021, OMBRIA, MSTAR and a pyroSAR Sentinel-1 raster"
# A picture of the model on a held-out HRSID tile (not georeferenced: pixel space): input | boxes
tile="$data/hrsid_mini/mini_test/images/P0015_3600_4400_4200_5000.jpg"
tmp=$(mktemp -d)
.venv/bin/sarmae predict ships "$tile" -q -o "$tmp/s.gpkg" --units amplitude --bands 1 \
  --allow-optical
.venv/bin/python -c "from sarmae_core.inference.quicklook import boxes_from_gpkg, write_quicklook as w; \
w('$tile', 'docs/ships_demo.png', 'amplitude', boxes_px=boxes_from_gpkg('$tmp/s.gpkg', '$tile'), \
  max_side=500, overwrite=True, side_by_side=True)"
rm -rf "$tmp"
.venv/bin/python -m training.model_card ships --out "$bundled/ships.md" \
  --command "training/recipes/ships.sh $out $data" \
  --onnx "$bundled/ships.onnx" --pretrain "$out/pretrain" --finetune "$out/ships" \
  --eval "HRSID scenes P0007 and P0015 (held out)=$out/ships/metrics.json" \
  --data-used HRSID ETCI OMBRIA MSTAR pyroSAR \
  --picture ../../../docs/ships_demo.png \
  --picture-caption "HRSID tile P0015_3600_4400_4200_5000 (held out; Wei et al. 2020, GPL-3.0): left the tile, right the ships found (amber boxes), made by training/recipes/ships.sh." \
  --limit "Trained on 24 HRSID tiles (0.5-3 m): ships in 10-20 m Sentinel-1 GRD are a few pixels long and at the edge of what it has seen." \
  --limit "Ships touching each other in the masks became one box in training, so moored ships side by side may come out as one detection." \
  --limit "Bright fixed targets at sea (platforms, buoys, wind turbines) and land near the coast are easily reported as ships; use an area of interest on open water."
echo "bundled model: $bundled/ships.onnx, card: $bundled/ships.md"
