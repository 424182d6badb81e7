#!/usr/bin/env bash
# The offshore held-out case of the bundled Ships model, as docs/ships_offshore.png (at the
# model's own confidence) and docs/ships_offshore_conf03.png (at 0.3), through predict with its
# defaults (boxes fitted to hulls):
#   training/recipes/ships_pictures.sh [DATA]      (default DATA=../shared/data)
# The tile is written as the held-out table reads it (1 m amplitude GeoTIFF, the config's
# DN -> amplitude, DN 0 floored as in training). Prints what the default picture shows of each
# hull (sarmae_train.heldout_ships.describe_hulls), the words of the card's caption.
# training/recipes/ships.sh runs it after exporting the model.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${1:-../shared/data}
stem=P0007_3000_3800_1800_2600
cfg=training/configs/finetune_ships_bundled.yaml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tif="$tmp/$stem.tif"
.venv/bin/python -c "import numpy as np; from PIL import Image; \
from sarmae_train.heldout_ships import write_tile; \
a = np.asarray(Image.open('$data/hrsid_mini/mini_test/images/$stem.jpg').convert('L'), np.float32); \
write_tile(__import__('pathlib').Path('$tif'), np.maximum(a / 255, 1 / 510), 1.0)"
for conf in default 0.3; do  # the model's confidence, and 0.3 (the held-out best F1 is near it)
  picture=docs/ships_offshore.png
  [ "$conf" = default ] || picture=docs/ships_offshore_conf${conf/./}.png
  .venv/bin/sarmae predict ships "$tif" -q -o "$tmp/s$conf.gpkg" --units amplitude \
    $([ "$conf" = default ] || echo --threshold "$conf") >&2
  .venv/bin/python -c "from sarmae_core.inference.products.quicklook import boxes_from_gpkg, write_quicklook as w; \
w('$tif', '$picture', 'amplitude', boxes_px=boxes_from_gpkg('$tmp/s$conf.gpkg', '$tif'), \
  max_side=500, overwrite=True, side_by_side=True)"
done
.venv/bin/python -c "from pathlib import Path; \
from sarmae_train.config import FinetuneRunConfig, load_config; \
from sarmae_train.datasets import build_dataset; \
from sarmae_train.heldout_ships import describe_hulls, read_boxes; \
cfg = load_config(FinetuneRunConfig, '$cfg', ['data.root=$data']); \
ds = build_dataset(cfg.data, cfg.data.test_split, 'amplitude', False, 0); \
item = next(i for i in ds.items if ds.item_id(i).startswith('$stem')); \
print(describe_hulls(read_boxes(Path('$tmp/sdefault.gpkg'), 1.0)[0], ds.load(item).target))"
