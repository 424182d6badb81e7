#!/usr/bin/env bash
# The SARMAE encoder shared by the bundled models (training/configs/pretrain_bundled.yaml):
#   training/recipes/encoder.sh OUT DATA      -> OUT/pretrain/checkpoint.safetensors
# Skipped when finished; an interrupted run continues with --resume.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1
data=$2
if [ ! -f "$out/pretrain/summary.json" ]; then
  resume=()
  ls "$out"/pretrain/checkpoints/state-step*.safetensors >/dev/null 2>&1 && resume=(--resume)
  .venv/bin/sarmae-train pretrain --config training/configs/pretrain_bundled.yaml \
    "${resume[@]}" run.out_dir="$out/pretrain" data.root="$data"
fi
