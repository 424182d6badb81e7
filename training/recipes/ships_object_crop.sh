#!/usr/bin/env bash
# Object-centred training crops for the ships model (training/README.md, "Ships: object-centred
# training crops"):
#   training/recipes/ships_object_crop.sh [OUT] [DATA]     (OUT=runs/ships_object_crop)
# The bundled Ships config with uniform crops (plain) and with a quarter or half of its crops
# placed to hold one whole ship (data.augment.object_crop 0.25: objcrop25, 0.5: objcrop), on
# the two scene folds (seed 0; 768 and 256 px tiles) and the bundled split, through
# training/recipes/ships_study.sh (what it trains and writes, and how to share the runs between
# cores). The plain fold runs are the plain runs of ships_paste_ablation.sh (same config, same
# seed): copy them into OUT to skip them.
exec "$(dirname "$0")/ships_study.sh" "${1:-runs/ships_object_crop}" "${2:-../shared/data}" \
  0 "768 256" plain= objcrop25=data.augment.object_crop=0.25 objcrop=data.augment.object_crop=0.5
