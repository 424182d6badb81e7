"""Flood as change with the analyst's own layers: reference water (raster in another CRS, or
polygons) is never flood, HAND above the threshold is excluded, the likelihood raster is
0-100, and a one-date water model maps flood against reference water. Real Sentinel-1 scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sarmae_core.errors import ConfigError, InputError, RasterError
from sarmae_core.inference import CallableBackend, predict
from sarmae_core.inference.products.change import (
    EXCLUDED,
    FLOOD,
    FLOOD_CLASSES,
    REFERENCE,
    apply_change,
    likelihood,
)

from .helpers import read, seg_info, to_epsg4326, write_raster
from .helpers import s1_db as scene_db
from .test_flood import FLOOD as FIELD
from .test_flood import change_model

#: Permanent water of the Camargue scene: its lagoons, darker than -19 dB before the event.
LAGOON_DB = -19.0
PIXEL_M2 = 400.0  # 20 m pixels


def water_model() -> CallableBackend:
    """One-date water: VV darker than -17 dB."""

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        p = 1 / (1 + np.exp(4.0 * (batch[:, 0] + 17.0)))
        return {"probabilities": np.stack([1 - p, p], axis=1).astype(np.float32)}

    info = seg_info(class_names=["background", "water"], resolution_m=20.0)
    return CallableBackend(run, info, name="water-threshold")


@pytest.fixture
def after(tmp_path: Path) -> Path:
    x = scene_db()
    x[FIELD] = -25.0
    return write_raster(tmp_path / "after_db.tif", x)


@pytest.fixture
def before(s1_db: Path) -> Path:
    return s1_db


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    """Permanent water as a 0/1 raster, in EPSG:4326 (another CRS than the scene's)."""
    water = (scene_db() < LAGOON_DB).astype(np.uint8)
    utm = write_raster(tmp_path / "reference_utm.tif", water)
    return to_epsg4326(utm, tmp_path / "reference_4326.tif")


def test_change_rules_on_synthetic_classes() -> None:
    classes = np.array([[0, 1, 1, 1, 255]], dtype=np.uint8)
    reference = np.array([[0, 0, 1, 1, 1]], dtype=bool)
    excluded = np.array([[1, 0, 0, 1, 1]], dtype=bool)
    valid = classes != 255
    out = apply_change(classes.copy(), reference, excluded, valid)
    # excluded dry land, flood kept, reference water wins over flood and over exclusion, no data
    assert out.tolist() == [[EXCLUDED, FLOOD, REFERENCE, REFERENCE, 255]]
    p = np.array([[0.004, 0.996, 0.7, 0.9, 0.5]], dtype=np.float32)
    assert likelihood(p, out, 255).tolist() == [[255, 100, 0, 0, 255]]
    assert FLOOD_CLASSES[FLOOD] == "flood" and FLOOD_CLASSES[REFERENCE] == "reference water"


def test_reference_water_in_another_crs_is_never_flood(after, before, reference, out) -> None:
    plan = {"class": out / "f.tif", "likelihood": out / "l.tif", "vector": out / "f.gpkg"}
    plain = predict(after, change_model(), {"class": out / "plain.tif"}, before=before)
    res = predict(after, change_model(), plan, before=before, reference_water=reference)
    classes, _ = read(res.files["class"])
    was, _ = read(plain.files["class"])
    lagoon = scene_db() < LAGOON_DB
    # the field flooded part of a lagoon: without the reference the model already leaves most
    # of it (it was dark before); with it, none of the lagoon is flood
    assert (classes[lagoon] == FLOOD).mean() < 0.01
    # nearest resampling there and back (UTM -> EPSG:4326 -> UTM) moves edges by a pixel
    assert (classes[lagoon & (was != 255)] == REFERENCE).mean() > 0.93
    new = ~lagoon & (was == FLOOD)
    assert (classes[new] == FLOOD).mean() > 0.93  # flood outside the lagoons stays flood
    s = res.summary
    assert s.flood_area_km2 == pytest.approx((classes == FLOOD).sum() * PIXEL_M2 / 1e6, rel=1e-3)
    assert s.reference_water_km2 == pytest.approx(
        (classes == REFERENCE).sum() * PIXEL_M2 / 1e6, rel=1e-3
    )
    assert s.excluded_km2 == 0.0 and s.observed_water_km2 is None  # two-date model
    percent, lp = read(res.files["likelihood"])
    assert lp["dtype"] == "uint8" and lp["nodata"] == 255
    assert percent[classes != 255].max() <= 100 and (percent[classes == REFERENCE] == 0).all()
    assert (percent[classes == FLOOD] >= 50).all() and (percent[classes == 0] < 50).all()
    with __import__("rasterio").open(res.files["class"]) as ds:
        assert ds.tags()["class_names"] == '["background", "flood", "reference water", "excluded"]'
        assert ds.colormap(1)[2][:3] == (0, 35, 110)


def test_reference_water_polygons_work_as_the_raster(after, before, reference, out) -> None:
    from osgeo import gdal, ogr, osr

    # polygonise the reference raster into a GeoPackage in EPSG:4326
    src = gdal.Open(str(reference))
    gpkg = out.parent / "reference.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(gpkg))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    layer = ds.CreateLayer("water", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("v", ogr.OFTInteger))
    band = src.GetRasterBand(1)
    gdal.Polygonize(band, band, layer, 0)
    layer, ds, src = None, None, None
    by_raster = predict(after, change_model(), out / "r.tif", before=before,
                        reference_water=reference)  # fmt: skip
    by_polygons = predict(after, change_model(), out / "p.tif", before=before,
                          reference_water=gpkg)  # fmt: skip
    a, _ = read(by_raster.files["class"])
    b, _ = read(by_polygons.files["class"])
    assert (a == b).mean() > 0.995  # centre-in-polygon vs nearest resampling at the edges
    assert by_polygons.summary.reference_water_km2 == pytest.approx(
        by_raster.summary.reference_water_km2, rel=0.02
    )


def test_hand_above_the_threshold_is_excluded(after, before, tmp_path, out) -> None:
    # a HAND raster rising from 0 m in the west to 40 m in the east of the scene
    h, w = scene_db().shape
    hand = np.tile(np.linspace(0.0, 40.0, w, dtype=np.float32), (h, 1))
    hand_tif = write_raster(tmp_path / "hand.tif", hand)
    plan = {"class": out / "f.tif", "exclusion": out / "x.tif", "likelihood": out / "l.tif"}
    res = predict(after, change_model(), plan, before=before, hand=hand_tif)
    classes, _ = read(res.files["class"])
    high = hand > 15.0
    valid = classes != 255
    assert (classes[high & valid] == EXCLUDED).all() and (classes[~high] != EXCLUDED).all()
    exclusion, xp = read(res.files["exclusion"])
    assert xp["nodata"] is None
    assert ((exclusion == 1) == (high & valid)).all() and ((exclusion == 2) == ~valid).all()
    percent, _ = read(res.files["likelihood"])
    assert (percent[high] == 255).all()
    assert res.summary.excluded_km2 == pytest.approx((high & valid).sum() * PIXEL_M2 / 1e6, 1e-3)
    assert any("15 m above the nearest drainage" in n for n in res.notes)
    # the flooded field spans the threshold: flood survives west of it only
    field_hand = hand[FIELD]
    assert (classes[FIELD][field_hand <= 15.0] == FLOOD).mean() > 0.5
    looser = predict(after, change_model(), out / "y.tif", before=before, hand=hand_tif,
                     hand_threshold_m=30.0)  # fmt: skip
    assert looser.summary.excluded_km2 < 0.5 * res.summary.excluded_km2


def test_one_date_water_model_maps_flood_against_reference(after, reference, out) -> None:
    res = predict(after, water_model(), {"class": out / "f.tif", "vector": out / "f.gpkg"},
                  job="flood", reference_water=reference)  # fmt: skip
    classes, _ = read(res.files["class"])
    lagoon = scene_db() < LAGOON_DB
    s = res.summary
    assert (classes[FIELD][~lagoon[FIELD]] == FLOOD).mean() > 0.93  # the new water
    assert (classes[lagoon & (classes != 255)] == REFERENCE).mean() > 0.93
    # observed water = flood + the reference water the model saw as water
    assert s.observed_water_km2 > s.flood_area_km2 > 0.5
    assert s.observed_water_km2 <= s.flood_area_km2 + s.reference_water_km2 + 1e-6
    assert s.vector_area_km2 == pytest.approx(s.flood_area_km2, rel=1e-3)  # flood traced only
    text = str(res)
    assert "observed water" in text and "reference water" in text and "flood area" in text


def test_bad_layers_are_one_clear_error_and_nothing_is_written(
    after, before, reference, tmp_path, out, models
) -> None:
    with pytest.raises(ConfigError, match="apply to flood mapping"):
        predict(after, water_model(), out / "w.gpkg", reference_water=reference)
    with pytest.raises(ConfigError, match="the exclusion raster belongs to flood runs"):
        predict(after, water_model(), {"exclusion": out / "x.tif"})
    with pytest.raises(RasterError, match=r"HAND raster .* does not exist"):
        predict(after, change_model(), out / "f.tif", before=before, hand=tmp_path / "no.tif")
    import rasterio

    with rasterio.open(after) as ds:
        t = ds.transform
    far = write_raster(tmp_path / "far.tif", np.ones(scene_db().shape, np.uint8),
                       transform=rasterio.Affine(t.a, 0, t.c + 1e6, 0, t.e, t.f))  # fmt: skip
    with pytest.raises(InputError, match=r"reference water raster far\.tif does not overlap"):
        predict(after, change_model(), out / "f.tif", before=before, reference_water=far)
    with pytest.raises(ConfigError, match="hand_threshold_m must be at least 0"):
        predict(after, change_model(), out / "f.tif", before=before, hand_threshold_m=-1.0)
    assert list(out.iterdir()) == []
    assert before.exists() and reference.exists()


def test_cli_maps_flood_against_reference_water_with_the_bundled_water_model(
    after, reference, tmp_path, out
) -> None:
    import subprocess
    import sys

    h, w = scene_db().shape
    heights = np.tile(np.linspace(0, 40, w, dtype=np.float32), (h, 1))
    hand = write_raster(tmp_path / "hand.tif", heights)
    cmd = [sys.executable, "-m", "sarmae_core.cli", "predict", "flood", str(after),
           "--reference-water", str(reference), "--hand", str(hand), "-o", str(out / "f.gpkg"),
           "--raster", str(out / "f.tif"), "--likelihood", str(out / "l.tif"), "--exclusion",
           str(out / "x.tif"), "--water", str(out / "w.tif"), "-q"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for line in ("observed water:", "flood area:", "reference water:", "excluded:"):
        assert line in r.stdout
    classes, _ = read(out / "f.tif")
    west = heights <= 15.0
    field = np.zeros(classes.shape, bool)
    field[FIELD] = True
    lagoon = scene_db() < LAGOON_DB
    # the bundled water model sees the flooded field; the lagoons are reference water
    assert (classes[field & west & ~lagoon] == FLOOD).mean() > 0.8
    assert (classes[lagoon & (classes != 255)] == FLOOD).mean() < 0.02
    assert (classes[~west & (classes != 255)] != FLOOD).all()
    assert sorted(p.name for p in out.iterdir()) == ["f.gpkg", "f.tif", "l.tif", "w.tif", "x.tif"]
    observed, _ = read(out / "w.tif")
    assert (observed[classes == FLOOD] == 1).all()


def tagged(path: Path, orbit: str | None) -> Path:
    """``path`` with the Sentinel-1 SAFE driver's orbit direction item (or none)."""
    import rasterio

    if orbit is not None:
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(ORBIT_DIRECTION=orbit)
    return path


#: Terrain bands of the test DEM across the scene's columns: (first column, slope in degrees,
#: positive rising eastwards). 20 m pixels.
BANDS = [(0, 0.0), (50, 60.0), (90, 0.0), (130, 45.0), (170, 30.0), (210, -60.0), (250, 0.0)]


def band_columns(w: int, slope: float) -> np.ndarray:
    """Columns inside the band of ``slope`` (two columns off each edge: gradients mix there)."""
    cols = np.zeros(w, bool)
    for (c0, s), (c1, _) in zip(BANDS, [*BANDS[1:], (w, 0.0)], strict=True):
        if s == slope:
            cols[c0 + 2 : c1 - 2] = True
    return cols


@pytest.mark.parametrize("orbit", ["ASCENDING", "DESCENDING", None])
def test_dem_excludes_radar_shadow_and_layover_for_the_orbit(orbit, before, tmp_path, out):
    x = scene_db()
    h, w = x.shape
    after = tagged(write_raster(tmp_path / "after_db.tif", x), orbit)
    rise = np.zeros(w)
    for (c0, s), (c1, _) in zip(BANDS, [*BANDS[1:], (w, 0.0)], strict=True):
        rise[c0:c1] = np.tan(np.radians(s)) * PIXEL_M2**0.5  # m per 20 m column
    dem = write_raster(tmp_path / "dem.tif", np.tile(np.cumsum(rise), (h, 1)).astype(np.float32))
    res = predict(after, change_model(), {"class": out / "f.tif", "exclusion": out / "x.tif"},
                  before=before, dem=dem)  # fmt: skip
    classes, _ = read(res.files["class"])
    codes, _ = read(res.files["exclusion"])
    rows = slice(2, h - 2)
    excluded = {s: (classes[rows][:, band_columns(w, s)] == EXCLUDED).mean() for _, s in BANDS}
    if orbit is None:
        assert all(v == 0 for v in excluded.values())
        assert any("radar shadow and layover were not computed" in n for n in res.notes)
        return
    # 60 degrees facing the sensor: layover; facing away: shadow (90 - 39 = 51 < 60): both
    assert excluded[60.0] == 1.0 and excluded[-60.0] == 1.0
    assert excluded[30.0] == 0.0
    # 45 degrees rising eastwards faces an ascending (east-looking) sensor: layover (> 39);
    # seen from a descending orbit it faces away, and 45 < 51 casts no shadow
    assert excluded[45.0] == (1.0 if orbit == "ASCENDING" else 0.0)
    # the 60-degree slopes drop 1386 m over 40 columns; beyond their foot, on the flat, the
    # ray that grazes their top reaches the ground about 15 columns further: cast shadow
    flat = classes[rows] == EXCLUDED
    foot, beyond = (250, slice(252, 262)) if orbit == "ASCENDING" else (50, slice(38, 48))
    assert flat[:, beyond].all()
    # nothing casts on the flat nearest the sensor, nor beyond the shadow's reach, nor on the
    # plateau
    clear = [slice(2, 48)] if orbit == "ASCENDING" else [slice(252, w), slice(2, foot - 20)]
    assert not any(flat[:, c].any() for c in clear) and not flat[:, 92:128].any()
    assert (codes[rows][:, band_columns(w, 60.0)] == 3).all()
    assert any(f"{orbit.lower()} orbit" in n for n in res.notes)


def test_dem_options_are_checked(after, before, out) -> None:
    with pytest.raises(ConfigError, match="incidence_deg must lie between 10 and 70"):
        predict(after, change_model(), out / "f.tif", before=before, dem=after, incidence_deg=5)
    with pytest.raises(ConfigError, match="dem apply to flood mapping"):
        predict(after, water_model(), out / "w.tif", dem=after)
    assert list(out.iterdir()) == []


def test_flood_quicklook_shows_reference_water_and_exclusions(after, reference, tmp_path, out):
    from PIL import Image

    h, w = scene_db().shape
    heights = np.tile(np.linspace(0, 40, w, dtype=np.float32), (h, 1))
    hand = write_raster(tmp_path / "hand.tif", heights)
    res = predict(after, water_model(), {"class": out / "f.tif"}, job="flood",
                  reference_water=reference, hand=hand, quicklook=out / "q.png")  # fmt: skip
    classes, _ = read(res.files["class"])
    img = np.asarray(Image.open(res.files["quicklook"]).convert("RGB")).astype(float)
    k = img.shape[0] // h  # small scenes are enlarged
    centres = img[k // 2 :: k, k // 2 :: k][:h, :w]
    # reference water drawn navy (blue well above red), excluded as a grey veil (R = G = B),
    # flood in the flood colour (red above blue)
    ref, exc, fl = (classes == REFERENCE), (classes == EXCLUDED), (classes == FLOOD)
    assert ref.sum() > 100 and exc.sum() > 100 and fl.sum() > 100
    assert (centres[ref][:, 2] - centres[ref][:, 0]).mean() > 30
    assert np.abs(centres[exc][:, 0] - centres[exc][:, 2]).mean() < 3
    assert (centres[fl][:, 0] - centres[fl][:, 2]).mean() > 30


def test_observed_water_on_the_after_date_in_both_modes(after, before, reference, out) -> None:
    lagoon = scene_db() < LAGOON_DB
    # against reference water: the one-date model's own water, before the reference comes out
    alone = predict(after, water_model(), {"class": out / "a.tif", "water": out / "aw.tif"},
                    job="flood", reference_water=reference)  # fmt: skip
    classes, _ = read(alone.files["class"])
    water, wp = read(alone.files["water"])
    assert wp["nodata"] == 255 and set(np.unique(water)) <= {0, 1, 255}
    assert (water[classes == FLOOD] == 1).all()  # flood is observed water
    assert (water[FIELD] == 1).mean() > 0.9 and (water[lagoon & (water != 255)] == 1).mean() > 0.9
    s = alone.summary
    assert s.observed_water_km2 == pytest.approx((water == 1).sum() * PIXEL_M2 / 1e6, rel=1e-3)
    # with a before scene: the bundled water model maps the after scene beside the flood model
    pair = predict(after, change_model(), {"class": out / "p.tif", "water": out / "pw.tif"},
                   before=before)  # fmt: skip
    by_pair, _ = read(pair.files["water"])
    by_water = predict(after, "water", {"class": out / "w.tif"})
    direct, _ = read(by_water.files["class"])
    assert (by_pair == direct).all()  # the same map as the water job's
    assert pair.summary.observed_water_km2 == pytest.approx(
        (direct == 1).sum() * PIXEL_M2 / 1e6, rel=1e-3
    )
    assert any(n.startswith("observed water: ") for n in pair.notes)
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "aw.tif", "p.tif", "pw.tif", "w.tif"]
    with pytest.raises(ConfigError, match="observed water raster belongs to flood runs"):
        predict(after, water_model(), {"water": out / "x.tif"})
