#!/usr/bin/env bash
# The main job: water segmentation of the real Sentinel-1 scene committed in the repository
# (tests/fixtures/s1_vv_db, Camargue wetlands, VV sigma0 in dB, 20 m) with the bundled Water
# model. Writes water polygons (GeoPackage), the water mask (GeoTIFF) and a quicklook PNG.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/demo}
scene=tests/fixtures/s1_vv_db/S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif
mkdir -p "$out"
.venv/bin/sarmae predict water "$scene" -o "$out/water.gpkg" --raster "$out/water_mask.tif" \
  --quicklook "$out/water_quicklook.png" --min-area 2000 --overwrite
echo "open $out/water_quicklook.png to see the scene with the water outline over it"
