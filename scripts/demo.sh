#!/usr/bin/env bash
# The main job, on the real Sentinel-1 scene committed in tests/fixtures/s1_vv_db.
# Until the bundled water model exists (issue: bundled default models), the main job is what the
# library does so far: SARMAE pretraining (SARE speckle on) on windows of the real scene, writing
# a checkpoint, a training log and a picture of input / speckled / masked / reconstruction.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/demo}
scene=tests/fixtures/s1_vv_db/S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif
rm -rf "$out/pretrain"
.venv/bin/sarmae-train pretrain "$scene" --units db --preset sarmae_test --steps 120 \
  --batch-size 16 --warmup-steps 10 --base-lr 1e-3 --save-every 60 --out "$out/pretrain"
last=$(ls "$out"/pretrain/recon_epoch*.png | tail -n 1)
echo "outputs:"
echo "  checkpoint      $out/pretrain/checkpoint.safetensors  (sarmae info shows its config)"
echo "  training log    $out/pretrain/log.csv"
echo "  reconstruction  $last  (rows: input | speckled input | masked | reconstruction)"
