#!/usr/bin/env bash
# Rebuilds the bundled Flood model (new flood between two dates) from the real data in
# ../shared/data (or DATA):
#   training/recipes/flood.sh [OUT] [DATA]      (default OUT=runs/bundled, DATA=../shared/data)
# 1. the bundled water model's run (training/recipes/water.sh, on the shared SARMAE encoder),
# 2. fine-tuning of a two-date model (VV before, VV after) on OMBRIA's official train pairs,
#    started from the whole water model (after <- its VV, before silent;
#    training/configs/finetune_flood_bundled.yaml), scored on the official test pairs,
# 3. its operating point (the best threshold on the training pairs) and the export to
#    sarmae_core/models/bundled/flood.onnx with it,
# 4. the held-out pairs beside the change baselines (the bundled water model on each date,
#    Otsu on the after chip, log-ratio change detection with Otsu, the oracle thresholds):
#    python -m sarmae_train.heldout_flood, and the model card flood.md.
# Finished steps are skipped, so the script can be rerun after an interruption.
source "$(dirname "$0")/common.sh" "$@"
cmd="training/recipes/flood.sh $out $data"
[ -f "$out/water/model.safetensors" ] || training/recipes/water.sh "$out" "$data"
init="$out/water/model.safetensors" finetune_once flood finetune_flood_bundled
# The operating point: the threshold with the best flood IoU on the training pairs (the test
# pairs are not looked at); OMBRIA's EMS masks are wider than the dark water, so it is below 0.5
operating="python -m sarmae_train.heldout_flood --config training/configs/finetune_flood_bundled.yaml --flood-model flood=$out/flood/at_0.5.onnx --out $out/flood/operating_point_train.json data.test_split=train"
if [ ! -f "$out/flood/operating_point_train.json" ]; then
  .venv/bin/sarmae export "$out/flood/model.safetensors" -o "$out/flood/at_0.5.onnx" --overwrite \
    --tile 256 --overlap 64 --name flood --no-check
  .venv/bin/$operating data.root="$data"
fi
threshold=$(.venv/bin/python -c "import json, sys; print(json.load(open(sys.argv[1]))['flood_models']['flood']['best_threshold'])" "$out/flood/operating_point_train.json")
if [ ! -f "$out/flood/exported" ]; then
  .venv/bin/sarmae export "$out/flood/model.safetensors" -o "$bundled/flood.onnx" --overwrite \
    --tile 256 --overlap 64 --name flood --threshold "$threshold" \
    --licence "research use, under the terms of its training data (see flood.md)" \
    --training-data "OMBRIA S1 before/after pairs (Drakonakis et al. 2022, Copernicus EMS flood masks, contains modified Copernicus Sentinel data), starting from the whole bundled water model (fine-tuned on ETCI 2021 North Alabama and the OMBRIA train split); encoder pretrained on ETCI 2021, OMBRIA, MSTAR, a pyroSAR Sentinel-1 raster, an SSL4EO-S12 Sentinel-1 sample and the SAR half of the Volkov optical-SAR pairs"
  touch "$out/flood/exported"
fi
heldout="python -m sarmae_train.heldout_flood --config training/configs/finetune_flood_bundled.yaml --flood-model flood=$bundled/flood.onnx --water-model water --out $out/flood/heldout.json"
[ -f "$out/flood/heldout.json" ] || .venv/bin/$heldout data.root="$data"
.venv/bin/python -m sarmae_train.model_card flood --out "$bundled/flood.md" --command "$cmd" \
  --onnx "$bundled/flood.onnx" --pretrain "$out/pretrain" --finetune "$out/flood" \
  --heldout "OMBRIA official test pairs=$out/flood/heldout.json" --heldout-command "$heldout" \
  --eval "OMBRIA official test pairs=$out/flood/metrics.json" --data-used OMBRIA ETCI MSTAR \
  pyroSAR SSL4EO-S12 Volkov \
  --limit "Threshold $threshold, chosen on the 624 training pairs as the best flood IoU there ($operating): OMBRIA's EMS masks reach beyond the dark water, so 0.5 under-calls them; the likelihood raster is the probability itself." \
  --limit "The OMBRIA paper reports, on its own 90/10 split (not comparable pixel for pixel), U-Net on S1 57.3 and its bitemporal OmbriaNet 51.8. Started from the encoder alone instead of the whole water model, 30 epochs of this recipe reached 41.8; from the water model, 30 epochs 57.3 and 60 epochs 61.8 at threshold 0.5 (training/README.md)." \
  --limit "Trained on OMBRIA only: 624 pairs of VV chips, each date min-max stretched to 8 bit; mapped to dB by an assumed affine (DN 0..255 = -35..+5 dB, which puts OMBRIA's flood water near -20 dB and its land near -8 dB, as in calibrated Sentinel-1), with +-4 dB / +-25 % jitter in training: an assumption, written in training/configs/finetune_flood_bundled.yaml." \
  --limit "OMBRIA's masks are Copernicus EMS flood extents: flooded vegetation and urban flooding are in some of them, and they are not dark in VV." \
  --limit "The two dates must be the same sensor geometry in practice (same orbit direction): different incidence angles change backscatter without any flood." \
  --limit "Water that was there before (rivers, lakes) is not flood by design; a river in spate is flood only where it left its bed."
echo "bundled model: $bundled/flood.onnx, card: $bundled/flood.md"
