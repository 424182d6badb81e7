#!/usr/bin/env bash
# Rebuilds the bundled Water VV+VH model from the real data in ../shared/data (or DATA):
#   training/recipes/water_vvvh.sh [OUT] [DATA]      (default OUT=runs/bundled, DATA=../shared/data)
# 1. the SARMAE encoder of training/recipes/water.sh (VV, pretrained once, shared),
# 2. fine-tuning for water on ETCI North Alabama VV+VH (the encoder's patch embedding widened to
#    two bands), scored on the held-out ETCI Nebraska scene beside Otsu on VV,
# 3. export to sarmae_core/models/bundled/water_vvvh.onnx, a picture of held-out tiles (VV, VH,
#    reference, the VV model, this model) and the model card water_vvvh.md.
# `sarmae predict water` picks this model for scenes that have both VV and VH bands.
# Finished steps are skipped, so the script can be rerun after an interruption.
source "$(dirname "$0")/common.sh" "$@"
cmd="training/recipes/water_vvvh.sh $out $data"
finetune_once water_vvvh finetune_water_vvvh_bundled
.venv/bin/sarmae export "$out/water_vvvh/model.safetensors" -o "$bundled/water_vvvh.onnx" \
  --overwrite --tile 256 --overlap 64 --name water_vvvh \
  --licence "research use, under the terms of its training data (see water_vvvh.md)" \
  --training-data "ETCI 2021 flood detection (NASA IMPACT; North Alabama scene, VV and VH); encoder pretrained on ETCI (VV), OMBRIA S1 (Drakonakis et al. 2022, contains modified Copernicus Sentinel data), MSTAR and a pyroSAR Sentinel-1 test raster"
.venv/bin/python -m sarmae_train.tile_picture --config finetune_water_vvvh_bundled.yaml --pixel-size 20 \
  --model "VV model=$bundled/water.onnx" --model "VV+VH model=$bundled/water_vvvh.onnx" \
  --out docs/water_vvvh_tiles.png data.root="$data"
.venv/bin/python -m sarmae_train.model_card water_vvvh --out "$bundled/water_vvvh.md" \
  --command "$cmd" --onnx "$bundled/water_vvvh.onnx" --pretrain "$out/pretrain" \
  --finetune "$out/water_vvvh" --data-used ETCI OMBRIA MSTAR pyroSAR \
  --eval "ETCI 2021, Nebraska scene (held out)=$out/water_vvvh/metrics.json" \
  --picture ../../../docs/water_vvvh_tiles.png \
  --picture-title "On held-out Sentinel-1 tiles" \
  --picture-caption "ETCI 2021 Nebraska tiles (held out; NASA IMPACT), spread over the scene, not chosen for quality: VV, VH (dB, stretched), the reference mask, the VV model and this model (blue = water, IoU on the tile above each). Made by training/recipes/water_vvvh.sh." \
  --limit "Needs calibrated VV and VH in dB (or linear, converted): ETCI's 8-bit bands were mapped to dB by assumed affines that differ per band (VV -30..+5 dB, VH -30..-14 dB; training/configs/finetune_water_vvvh_bundled.yaml)." \
  --limit "Trained on one flood scene (ETCI North Alabama, 356 tiles); OMBRIA has no VH, so this model saw far fewer scenes than the VV model." \
  --limit "Recall on Nebraska is low (30 %, precision 87 %): it misses water that is not dark in both bands, and the held-out reference also has rectangular blocks labelled water over whole fields (e.g. tiles x-5_y-10 and x-8_y-9), which no model reproduces; read the per-tile pictures, not just the number." \
  --limit "Flooded vegetation and urban flooding are not dark and so not water to this model; radar shadow and smooth tarmac can be mistaken for water."
echo "bundled model: $bundled/water_vvvh.onnx, card: $bundled/water_vvvh.md, picture: docs/water_vvvh_tiles.png"
