# Sourced by the bundled-model recipes (water.sh, water_vvvh.sh, ships.sh) with their arguments
# [OUT] [DATA]: sets out, data, train, bundled, makes sure the shared SARMAE encoder exists
# (training/recipes/encoder.sh) and defines finetune_once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${1:-runs/bundled}
data=${2:-../shared/data}
train=.venv/bin/sarmae-train
bundled=sarmae_core/models/bundled

training/recipes/encoder.sh "$out" "$data"

finetune_once() {  # NAME CONFIG [overrides...]: fine-tune from the shared encoder (or $init), unless done
  local name=$1 cfg=$2
  shift 2
  [ -f "$out/$name/metrics.json" ] && return 0
  rm -rf "${out:?}/$name"
  $train finetune --config "training/configs/$cfg.yaml" \
    --init "${init:-$out/pretrain/checkpoint.safetensors}" run.out_dir="$out/$name" data.root="$data" "$@"
}
