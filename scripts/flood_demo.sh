#!/usr/bin/env bash
# The flood job on the real Sentinel-1 pair committed in the repository
# (tests/fixtures/s1_pair_punjab: Punjab farmland, VV in dB, 2020-06-07 before the monsoon and
# 2020-09-03 during it) with the bundled Flood model. Writes flood polygons (GeoPackage), the
# flood map (GeoTIFF), the flood likelihood (0-100 %) and a before | after | flood quicklook.
# The pair is real but seasonal inundation of paddies, not a flood emergency, and its dates
# come from two orbit directions (the run says so in a note).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/flood_demo}
pair=tests/fixtures/s1_pair_punjab
mkdir -p "$out"
.venv/bin/sarmae predict flood "$pair/S1A_20200903_ascending_VV_db.tif" \
  --before "$pair/S1A_20200607_descending_VV_db.tif" -o "$out/flood.gpkg" \
  --raster "$out/flood.tif" --likelihood "$out/flood_likelihood.tif" \
  --quicklook "$out/flood_quicklook.png" --overwrite
echo "open $out/flood_quicklook.png to see before | after | flood"
