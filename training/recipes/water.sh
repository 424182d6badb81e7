#!/usr/bin/env bash
# Rebuilds the bundled Water model from the real data in ../shared/data (or DATA):
#   training/recipes/water.sh [OUT] [DATA]      (default OUT=runs/bundled, DATA=../shared/data)
# 1. SARMAE pretraining of the encoder (SARE on) on training splits only,
# 2. fine-tuning for water on ETCI North Alabama + OMBRIA train, scored on the held-out ETCI
#    Nebraska scene,
# 3. scoring on the OMBRIA test split,
# 4. export to sarmae_core/models/bundled/water.onnx and its model card water.md.
# Finished steps are skipped, so the script can be rerun after an interruption.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/bundled}
data=${2:-../shared/data}
train=.venv/bin/sarmae-train
bundled=sarmae_core/models/bundled
cmd="training/recipes/water.sh $out $data"

if [ ! -f "$out/pretrain/summary.json" ]; then
  resume=()
  ls "$out"/pretrain/checkpoints/state-step*.safetensors >/dev/null 2>&1 && resume=(--resume)
  $train pretrain --config training/configs/pretrain_bundled.yaml "${resume[@]}" \
    run.out_dir="$out/pretrain" data.root="$data"
fi
if [ ! -f "$out/water/metrics.json" ]; then
  rm -rf "$out/water"
  $train finetune --config training/configs/finetune_water_bundled.yaml \
    --init "$out/pretrain/checkpoint.safetensors" run.out_dir="$out/water" \
    data.root="$data" data.extra_train.0.root="$data"
fi
$train evaluate --config training/configs/eval_water_ombria.yaml \
  --checkpoint "$out/water/model.safetensors" --out "$out/water/metrics_ombria_test.json" \
  data.root="$data"
.venv/bin/sarmae export "$out/water/model.safetensors" -o "$bundled/water.onnx" --overwrite \
  --tile 256 --overlap 64 --name water --licence "CC-BY-4.0 (weights); see water.md for data terms" \
  --training-data "ETCI 2021 flood detection (NASA IMPACT; North Alabama scene), OMBRIA S1 (Drakonakis et al. 2022, Copernicus EMS masks, contains modified Copernicus Sentinel data); encoder pretrained on these plus MSTAR and a pyroSAR Sentinel-1 test raster"
.venv/bin/python -m training.model_card water --out "$bundled/water.md" --command "$cmd" \
  --onnx "$bundled/water.onnx" --pretrain "$out/pretrain" --finetune "$out/water" \
  --eval "ETCI 2021, Nebraska scene (held out)=$out/water/metrics.json" \
  --eval "OMBRIA official test split=$out/water/metrics_ombria_test.json" \
  --limit "Per-tile normalisation: a tile that is all water or all land has no contrast to go by; tiles of 256 px with overlap keep most tiles mixed." \
  --limit "Trained on VV only, C-band Sentinel-1 at 10-20 m; other bands, sensors and resolutions are untested." \
  --limit "Flooded vegetation and urban flooding (bright double bounce) are not water to this model; OMBRIA's EMS masks sometimes include them, which lowers its OMBRIA scores." \
  --limit "Radar shadow, smooth tarmac and very dry sand are dark like water and can be mistaken for it." \
  --limit "Small training set (two ETCI scenes, 624 OMBRIA chips); held-out figures are from one ETCI scene and 70 OMBRIA chips."
echo "bundled model: $bundled/water.onnx, card: $bundled/water.md"
