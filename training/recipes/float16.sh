#!/usr/bin/env bash
# The bundled models with float16-stored weights (what the plugin zip carries) against the
# committed float32 files, on the same held-out data, all through predict:
#   training/recipes/float16.sh [OUT] [DATA]      (default OUT=runs/float16, DATA=../shared/data)
# Writes OUT/{water,water_vvvh,ships}.onnx (sarmae export MODEL.onnx --weights float16) and the
# held-out tables OUT/*.txt / *.json: water on ETCI Nebraska (20 m) and OMBRIA test (10 m),
# water_vvvh on ETCI Nebraska (VV+VH), ships on the HRSID held-out tiles. Needs no training.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${1:-runs/float16}
data=${2:-../shared/data}
bundled=sarmae_core/models/bundled
mkdir -p "$out"
for name in water water_vvvh ships; do
  .venv/bin/sarmae export "$bundled/$name.onnx" -o "$out/$name.onnx" --weights float16 --overwrite
done
heldout() {  # OUTNAME MODULE CONFIG [args...]
  local name=$1 module=$2 cfg=$3
  shift 3
  .venv/bin/python -m "sarmae_train.$module" --config "training/configs/$cfg.yaml" "$@" \
    --out "$out/$name.json" data.root="$data" | tee "$out/$name.txt"
}
heldout water_etci heldout finetune_water_bundled --pixel-size 20 \
  --model "float32=$bundled/water.onnx" --model "float16=$out/water.onnx"
heldout water_ombria heldout finetune_water_ombria --pixel-size 10 \
  --model "float32=$bundled/water.onnx" --model "float16=$out/water.onnx"
heldout water_vvvh_etci heldout finetune_water_vvvh_bundled --pixel-size 20 \
  --model "float32=$bundled/water_vvvh.onnx" --model "float16=$out/water_vvvh.onnx"
heldout ships heldout_ships finetune_ships_bundled \
  --model "float32=$bundled/ships.onnx" --model "float16=$out/ships.onnx"
ls -l "$bundled"/*.onnx "$out"/*.onnx
