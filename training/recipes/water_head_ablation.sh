#!/usr/bin/env bash
# The water head, measured against the head it replaced, everything else equal: the same
# committed encoder, data, augmentation (scale 0.5-1.25, dB jitter), crops, optimiser and
# epochs (EPOCHS, default 6: CPU-sized; the bundled model trains 20).
#   training/recipes/water_head_ablation.sh [OUT] [DATA]     (OUT=runs/ablation)
# Rows: `detail` = full-resolution detail path + encoder on the input pooled by 2 (the bundled
# head); `plain` = logits upsampled from the stride-4 decoder map, encoder on the input as is
# (the head before). Each is scored on the held-out ETCI Nebraska scene (in the fine-tuning
# run) and on the OMBRIA test split, with Otsu per tile, per scene and the oracle threshold.
# Finished runs are skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/ablation}
data=${2:-../shared/data}
epochs=${EPOCHS:-6}
train=.venv/bin/sarmae-train
training/recipes/encoder.sh runs/bundled "$data"
for head in detail plain; do
  opts=()
  [ "$head" = plain ] && opts=(model.detail=0 model.context_pool=1)
  run="$out/$head"
  if [ ! -f "$run/metrics.json" ]; then
    rm -rf "$run"
    $train finetune --config training/configs/finetune_water_bundled.yaml \
      --init runs/bundled/pretrain/checkpoint.safetensors run.out_dir="$run" data.root="$data" \
      data.extra_train.0.root="$data" optim.epochs="$epochs" "${opts[@]}"
  fi
  [ -f "$run/metrics_ombria_test.json" ] || $train evaluate \
    --config training/configs/eval_water_ombria.yaml --checkpoint "$run/model.safetensors" \
    --out "$run/metrics_ombria_test.json" data.root="$data"
done
.venv/bin/python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}"
print("| head | held-out set | water IoU | Otsu per tile | Otsu per scene | oracle threshold | ECE | s/step |")
print("|---|---|---|---|---|---|---|---|")
for head in ("detail", "plain"):
    log = (out / head / "log.csv").read_text().splitlines()
    rows = [r.split(",") for r in log[1:]]
    sec = float(rows[-1][-1]) / int(rows[-1][0])
    for name, f in (("ETCI Nebraska", "metrics.json"), ("OMBRIA test", "metrics_ombria_test.json")):
        m = json.loads((out / head / f).read_text())
        print(f"| {head} | {name} | {pct(m['water_iou'])} | {pct(m['baseline_otsu']['water_iou'])} "
              f"| {pct(m['baseline_otsu_set']['water_iou'])} "
              f"| {pct(m['baseline_oracle_threshold']['water_iou'])} "
              f"| {m['calibration']['ece']:.3f} | {sec:.2f} |")
PY
