#!/usr/bin/env bash
# A heavier size loss for the ships model (training/README.md, "Box length against pixel size"):
#   training/recipes/ships_size_weight.sh [OUT] [DATA]     (OUT=runs/ships_size_weight)
# The bundled Ships config (loss.size_weight 1: plain) and with loss.size_weight 3 (size3), on
# the two scene folds with seeds 0 and 1 (768 px tiles) and the bundled split, through
# training/recipes/ships_study.sh (what it trains and writes, and how to share the runs between
# cores).
exec "$(dirname "$0")/ships_study.sh" "${1:-runs/ships_size_weight}" "${2:-../shared/data}" \
  "0 1" 768 plain= size3=loss.size_weight=3.0
