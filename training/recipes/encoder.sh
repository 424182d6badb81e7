#!/usr/bin/env bash
# The SARMAE encoder shared by the bundled models (training/configs/pretrain_bundled.yaml):
#   training/recipes/encoder.sh OUT DATA      -> OUT/pretrain/checkpoint.safetensors
# The encoder is trained once and committed (training/encoders/bundled/: the encoder weights,
# the run's config, log and summary), so every bundled model is fine-tuned from the same one:
# it is copied to OUT/pretrain unless PRETRAIN=1, which retrains it (about 30 min on one core;
# an interrupted run continues with --resume) and, with COMMIT_ENCODER=1, replaces the
# committed copy. Skipped when OUT/pretrain is finished.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1
data=$2
committed=training/encoders/bundled
if [ ! -f "$out/pretrain/summary.json" ] && [ -z "${PRETRAIN:-}" ] && [ -f "$committed/encoder.safetensors" ]; then
  mkdir -p "$out/pretrain"
  cp "$committed/config.json" "$committed/log.csv" "$out/pretrain/"
  cp "$committed/encoder.safetensors" "$out/pretrain/checkpoint.safetensors"
  cp "$committed/summary.json" "$out/pretrain/summary.json"  # last: marks the step finished
  echo "encoder: the committed $committed/encoder.safetensors (PRETRAIN=1 retrains it)"
fi
if [ ! -f "$out/pretrain/summary.json" ]; then
  resume=()
  ls "$out"/pretrain/checkpoints/state-step*.safetensors >/dev/null 2>&1 && resume=(--resume)
  .venv/bin/sarmae-train pretrain --config training/configs/pretrain_bundled.yaml \
    "${resume[@]}" run.out_dir="$out/pretrain" data.root="$data"
  if [ -n "${COMMIT_ENCODER:-}" ]; then
    .venv/bin/python -c "from sarmae_core.models.checkpoint import encoder_only as e; \
e('$out/pretrain/checkpoint.safetensors', '$committed/encoder.safetensors', overwrite=True)"
    cp "$out/pretrain/config.json" "$out/pretrain/log.csv" "$out/pretrain/summary.json" "$committed/"
  fi
fi
