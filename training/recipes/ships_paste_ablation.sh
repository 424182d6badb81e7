#!/usr/bin/env bash
# Copy-paste for the ships model, measured by cross-validation over HRSID mini's scenes:
#   training/recipes/ships_paste_ablation.sh [OUT] [DATA]     (OUT=runs/ships_paste_ablation)
# The bundled ships config (same committed encoder, scale augmentation, optimiser), without and
# with copy-paste (data.options.paste_ships: PASTE, default 8 ships per sample at most), on two
# folds of scenes (test_every 2: every other sorted scene is test, fold 0 then fold 1), so every
# one of the 69 ships is scored once, by a model that never saw its scene; the bundled split
# holds out 10. The folds train on 20 and 16 tiles (2 batches of 8 an epoch), so 540 epochs
# keep the bundled run's 1080 steps. Each run prints COCO AP / AP50 and found/missed/false
# beside CA-CFAR; python -m sarmae_train.report prints the table (mean +- std over the two
# folds, and the paired difference).
# Finished runs are skipped. About 11 min per run on one free core. Copies of the script on the
# same OUT share the runs (each is claimed with a lock while a copy works on it): start one per
# core.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/ships_paste_ablation}
data=${2:-../shared/data}
paste=${PASTE:-8}
train=.venv/bin/sarmae-train
training/recipes/encoder.sh runs/bundled "$data"
for fold in 0 1; do
  for variant in plain paste; do
    # named NAME-sFOLD so that the report pairs the two variants fold by fold
    run="$out/ships-$variant-s$fold"
    [ -f "$run/metrics.json" ] && continue
    mkdir -p "$out"
    exec {lock}>"$out/.ships-$variant-s$fold.lock"
    flock -n "$lock" || { exec {lock}>&-; continue; }  # another copy runs it
    rm -rf "$run"
    n=0
    [ "$variant" = paste ] && n=$paste
    $train finetune --config training/configs/finetune_ships_bundled.yaml \
      --init runs/bundled/pretrain/checkpoint.safetensors run.out_dir="$run" data.root="$data" \
      data.options.test_every=2 data.options.test_fold="$fold" data.options.paste_ships="$n" \
      optim.epochs=540 'eval.groups={}'
    exec {lock}>&-
  done
done
.venv/bin/python -m sarmae_train.report "$out"/ships-*-s*/metrics.json | tee "$out/table.md"
