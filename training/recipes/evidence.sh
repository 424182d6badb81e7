#!/usr/bin/env bash
# Evidence runs for training/README.md ("Results"): pretrain the tiny preset on the real SAR in
# ../shared/data, then fine-tune each task from scratch and from that encoder, and print the
# README table from the metrics.json files the runs wrote.
#
#   training/recipes/evidence.sh [OUT]          (default OUT=runs/evidence)
#
# Environment: PRETRAIN_ARGS / FINETUNE_ARGS add key=value overrides to every pretraining /
# fine-tuning run (e.g. FINETUNE_ARGS="run.threads=2"); LAUNCH prefixes the pretraining command
# (e.g. LAUNCH="torchrun --nproc_per_node=4 -m training.cli" on a GPU machine).
# Finished runs (summary.json / metrics.json present) are skipped, so the script can be rerun
# after an interruption; an interrupted pretraining continues with --resume.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/evidence}
train=".venv/bin/sarmae-train"
launch=${LAUNCH:-$train}
read -r -a pre <<<"${PRETRAIN_ARGS:-}"
read -r -a fin <<<"${FINETUNE_ARGS:-}"

if [ ! -f "$out/pretrain/summary.json" ]; then
  resume=()
  ls "$out"/pretrain/checkpoints/state-step*.safetensors >/dev/null 2>&1 && resume=(--resume)
  $launch pretrain --config training/configs/pretrain_tiny.yaml "${resume[@]}" \
    run.out_dir="$out/pretrain" "${pre[@]}"
fi
ckpt="$out/pretrain/checkpoint.safetensors"

finetune() {  # name config [overrides...]
  local name=$1 cfg=$2
  shift 2
  for init in scratch sarmae; do
    local dir="$out/$name-$init" args=()
    [ "$init" = sarmae ] && args=(--init "$ckpt")
    [ -f "$dir/metrics.json" ] && continue
    rm -rf "$dir"
    $train finetune --config "training/configs/$cfg.yaml" "${args[@]}" run.out_dir="$dir" \
      "$@" "${fin[@]}"
  done
}
finetune mstar finetune_mstar
finetune mstar40 finetune_mstar data.shots_per_class=40
finetune etci finetune_water_etci
finetune hrsid finetune_ships_hrsid

.venv/bin/python -m training.report "$out"/*/metrics.json | tee "$out/table.md"
