#!/usr/bin/env bash
# Rebuilds the bundled Water model from the real data in ../shared/data (or DATA):
#   training/recipes/water.sh [OUT] [DATA]      (default OUT=runs/bundled, DATA=../shared/data)
# 1. SARMAE pretraining of the encoder (SARE on) on training splits only,
# 2. fine-tuning for water on ETCI North Alabama + OMBRIA train, scored on the held-out ETCI
#    Nebraska scene,
# 3. scoring on the OMBRIA test split,
# 4. export to sarmae_core/models/bundled/water.onnx and its model card water.md.
# Finished steps are skipped, so the script can be rerun after an interruption.
source "$(dirname "$0")/common.sh" "$@"
cmd="training/recipes/water.sh $out $data"
finetune_once water finetune_water_bundled data.extra_train.0.root="$data"
$train evaluate --config training/configs/eval_water_ombria.yaml \
  --checkpoint "$out/water/model.safetensors" --out "$out/water/metrics_ombria_test.json" \
  data.root="$data"
.venv/bin/sarmae export "$out/water/model.safetensors" -o "$bundled/water.onnx" --overwrite \
  --tile 256 --overlap 64 --name water --licence "research use, under the terms of its training data (see water.md)" \
  --training-data "ETCI 2021 flood detection (NASA IMPACT; North Alabama scene), OMBRIA S1 (Drakonakis et al. 2022, Copernicus EMS masks, contains modified Copernicus Sentinel data); encoder pretrained on these plus MSTAR and a pyroSAR Sentinel-1 test raster"
# A picture of the model on the calibrated dB scene committed in the repository: input | result
scene=tests/fixtures/s1_vv_db/S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif
tmp=$(mktemp -d)
.venv/bin/sarmae predict water "$scene" -q -o "$tmp/w.gpkg" --raster "$tmp/w.tif"
.venv/bin/python -c "from sarmae_core.inference.quicklook import write_quicklook as w; \
w('$scene', 'docs/water_demo.png', 'db', class_raster='$tmp/w.tif', max_side=600, \
  overwrite=True, side_by_side=True)"
rm -rf "$tmp"
.venv/bin/python -m training.model_card water --out "$bundled/water.md" --command "$cmd" \
  --onnx "$bundled/water.onnx" --pretrain "$out/pretrain" --finetune "$out/water" \
  --eval "ETCI 2021, Nebraska scene (held out)=$out/water/metrics.json" \
  --eval "OMBRIA official test split=$out/water/metrics_ombria_test.json" \
  --picture ../../../docs/water_demo.png \
  --picture-caption "Sentinel-1A VV sigma0 in dB, 2015-03-09, 20 m, Camargue (tests/fixtures/s1_vv_db; contains modified Copernicus Sentinel data 2015): left the scene, right the model's water (blue, cyan outline), made by training/recipes/water.sh." \
  --limit "Held-out ETCI Nebraska (February 2017, water 4.5 % of pixels, weak water/land contrast) is hard for it (low precision in the table above); treat maps of scenes unlike the training scenes with care." \
  --limit "Outlines are smooth at the scale of a few hundred metres: dykes and strips between ponds inside a wetland are mapped as water, narrow rivers and canals are missed." \
  --limit "Trained on VV only, C-band Sentinel-1 at 10-20 m; other bands, sensors and resolutions are untested." \
  --limit "Flooded vegetation and urban flooding (bright double bounce) are not dark and so not water to this model; OMBRIA's EMS masks sometimes include them." \
  --limit "Radar shadow, smooth tarmac and very dry sand are dark like water and can be mistaken for it." \
  --limit "8-bit training chips were mapped to dB by declared affines (ETCI -30..+5 dB, OMBRIA nominal -25..0 dB): assumptions, written in training/configs/finetune_water_bundled.yaml." \
  --limit "Small training set (two ETCI scenes' worth of tiles minus the held-out one, 624 OMBRIA chips) and a short CPU training (pretraining 1500 steps, fine-tuning 15 epochs)."
echo "bundled model: $bundled/water.onnx, card: $bundled/water.md, picture: docs/water_demo.png"
