#!/usr/bin/env bash
# The bundled models with smaller weights against the committed float32 files, on the same
# held-out data, all through predict:
#   training/recipes/smaller_models.sh [OUT] [DATA]   (default OUT=runs/smaller, DATA=../shared/data)
# Writes OUT/{water,water_vvvh,ships,flood}_{float16,int8}.onnx (sarmae export MODEL.onnx --weights W;
# the plugin zip carries int8) and the held-out tables OUT/*.txt / *.json: water on OMBRIA test
# (10 m; the bundled water model trained on both ETCI scenes), water_vvvh on ETCI Nebraska
# (VV+VH), ships on the
# HRSID held-out tiles, flood on the OMBRIA test pairs. Needs no training; finished tables are kept, so a rerun after an
# interruption does only what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${1:-runs/smaller}
data=${2:-../shared/data}
bundled=sarmae_core/models/bundled
mkdir -p "$out"
for name in water water_vvvh ships flood; do
  for weights in float16 int8; do
    [ -f "$out/${name}_$weights.onnx" ] || .venv/bin/sarmae export "$bundled/$name.onnx" \
      -o "$out/${name}_$weights.onnx" --weights "$weights"
  done
done
heldout() {  # OUTNAME MODULE CONFIG MODEL [args...]
  local name=$1 module=$2 cfg=$3 model=$4
  shift 4
  [ -f "$out/$name.json" ] && return 0
  .venv/bin/python -m "sarmae_train.$module" --config "training/configs/$cfg.yaml" "$@" \
    --model "float32=$bundled/$model.onnx" --model "float16=$out/${model}_float16.onnx" \
    --model "int8=$out/${model}_int8.onnx" --out "$out/$name.json" data.root="$data" \
    | tee "$out/$name.txt"
}
heldout water_ombria heldout finetune_water_ombria water --pixel-size 10
heldout water_vvvh_etci heldout finetune_water_vvvh_bundled water_vvvh --pixel-size 20
heldout ships heldout_ships finetune_ships_bundled ships
[ -f "$out/flood.json" ] || .venv/bin/python -m sarmae_train.heldout_flood \
  --config training/configs/finetune_flood_bundled.yaml --flood-model "float32=$bundled/flood.onnx" \
  --flood-model "float16=$out/flood_float16.onnx" --flood-model "int8=$out/flood_int8.onnx" \
  --out "$out/flood.json" data.root="$data" | tee "$out/flood.txt"
ls -l "$bundled"/*.onnx "$out"/*.onnx
