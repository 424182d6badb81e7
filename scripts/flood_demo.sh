#!/usr/bin/env bash
# The flood job with the bundled Flood model on real flood data committed in the repository:
# four held-out OMBRIA before/after Sentinel-1 VV chips (tests/fixtures/ombria_flood_pair; on a
# declared grid, since the chips carry none). Writes flood polygons (GeoPackage), the flood map
# (GeoTIFF), the flood likelihood (0-100 %) and a before | after | flood quicklook, and prints
# the flood IoU against the chips' Copernicus EMS flood mask.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/flood_demo}
pair=tests/fixtures/ombria_flood_pair
mkdir -p "$out"
.venv/bin/sarmae predict flood "$pair/after_VV_db.tif" --before "$pair/before_VV_db.tif" \
  -o "$out/flood.gpkg" --raster "$out/flood.tif" --likelihood "$out/flood_likelihood.tif" \
  --quicklook "$out/flood_quicklook.png" --overwrite
.venv/bin/python - "$out/flood.tif" "$pair/flood_mask.tif" <<'PY'
import sys

import rasterio

with rasterio.open(sys.argv[1]) as a, rasterio.open(sys.argv[2]) as b:
    mapped, reference = a.read(1) == 1, b.read(1) == 1
iou = (mapped & reference).sum() / (mapped | reference).sum()
print(f"flood IoU against the Copernicus EMS mask: {100 * iou:.1f} %")
PY
echo "open $out/flood_quicklook.png to see before | after | flood"
