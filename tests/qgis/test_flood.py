"""Map flood in QGIS: two SAR layers (before, after) in the dock and in Processing, on real
Sentinel-1 GeoTIFFs; the before scene in another CRS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qgis.core import Qgis, QgsProject, QgsRasterLayer, QgsVectorLayer

from qgis_plugin.params import RunParameters
from tests.conftest import S1_VV_DB
from tests.qgis.conftest import add_layer

pytestmark = pytest.mark.qgis

#: The flooded field: after the event it is as dark as open water.
FIELD = (slice(60, 120), slice(80, 180))


@pytest.fixture
def pair(project: QgsProject, tmp_path: Path) -> tuple[QgsRasterLayer, QgsRasterLayer]:
    """(after, before): the scene with a field flooded, and the scene itself in EPSG:4326."""
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(S1_VV_DB) as src:
        x = src.read()
        profile = src.profile
        x[0][FIELD] = -25.0
        after = tmp_path / "after_VV_db.tif"
        with rasterio.open(after, "w", **profile) as dst:
            dst.write(x)
        t, w, h = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height,
                                              *src.bounds)  # fmt: skip
        before = tmp_path / "before_VV_db_4326.tif"
        with rasterio.open(before, "w", **(profile | dict(crs="EPSG:4326", transform=t,
                                                          width=w, height=h))) as dst:  # fmt: skip
            reproject(rasterio.band(src, 1), rasterio.band(dst, 1),
                      resampling=Resampling.nearest)  # fmt: skip
    return add_layer(project, after, "S1 after"), add_layer(project, before, "S1 before")


def test_map_flood_adds_red_flood_polygons_on_the_after_grid(
    plugin, pair, project, qgis_iface, models
):
    after, before = pair
    outcome_task = plugin.start(
        RunParameters(job="flood", layer_id=after.id(), before_layer_id=before.id(),
                      model=str(models["flood"])),
        background=False,
    )  # fmt: skip
    assert outcome_task is not None
    outcome = plugin.last_outcome
    assert outcome.ok, outcome.error
    flood = [lyr for lyr in project.mapLayers().values() if lyr.name().startswith("Flood [")]
    assert len(flood) == 1 and isinstance(flood[0], QgsVectorLayer)
    layer = flood[0]
    assert layer.crs() == after.crs() and layer.featureCount() > 0
    area_km2 = sum(f.geometry().area() for f in layer.getFeatures()) / 1e6
    field_km2 = 60 * 100 * 400 / 1e6
    assert 0.2 * field_km2 < area_km2 < field_km2  # new water only, not the lagoon before
    fill = layer.renderer().symbol().symbolLayer(0)
    assert fill.color().red() == 255 and fill.color().blue() < 100  # red-orange, not water blue
    (text,) = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Success)
    assert "Flood: " in text and "S1 after" in text


def test_map_flood_refusals_say_what_to_choose(plugin, pair, qgis_iface, models):
    after, before = pair
    cases = [
        (RunParameters(job="flood", layer_id=after.id(), model=str(models["flood"])),
         "needs the scene before the event (Input ▸ Before) or the water of normal times"),
        (RunParameters(job="flood", layer_id=after.id(), before_layer_id=after.id(),
                       model=str(models["flood"])), "the same scene"),
        (RunParameters(job="flood", layer_id=after.id(), before_layer_id=before.id(),
                       model=str(models["water"])), "needs a two-date (flood) model"),
        (RunParameters(job="water", layer_id=after.id(), model=str(models["flood"])),
         "use Map flood"),
    ]  # fmt: skip
    for params, expected in cases:
        assert plugin.start(params, background=False) is None
        shown = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Warning)
        assert any(expected in m for m in shown), (expected, shown)


def test_dock_offers_map_flood_for_a_two_date_model_only(project, pair, models):
    from qgis_plugin.dock import MODEL_FILE, SarmaeDock

    dock = SarmaeDock(project)
    after, before = pair
    dock.model_combo.setCurrentIndex(dock.model_combo.findData(MODEL_FILE))
    dock.model_file.setFilePath(str(models["flood"]))
    assert dock.flood_button.isEnabled() and not dock.water_button.isEnabled()
    dock.layer_combo.setLayer(after)
    dock.before_combo.setLayer(before)
    p = dock.parameters("flood")
    assert (p.job, p.layer_id, p.before_layer_id) == ("flood", after.id(), before.id())
    assert len(dock._band_boxes) == 1  # each scene gives one VV band
    dock.model_file.setFilePath(str(models["water"]))
    assert not dock.flood_button.isEnabled() and dock.water_button.isEnabled()


def test_processing_map_flood(qgis_processing, pair, models, tmp_path):
    import processing

    from qgis_plugin import classFactory

    plugin = classFactory(None)
    plugin.initProcessing()
    try:
        after, before = (layer.source() for layer in pair)
        out = processing.run("sarmae:mapflood", {
            "INPUT": after, "BEFORE": before, "MODEL": str(models["flood"]),
            "OUTPUT": str(tmp_path / "flood.gpkg"), "OUTPUT_RASTER": str(tmp_path / "f.tif"),
        })  # fmt: skip
        layer = QgsVectorLayer(out["OUTPUT"], "f", "ogr")
        assert layer.isValid() and layer.featureCount() > 0
        # pytest.raises keeps this frame in its traceback: a layer still referenced from it
        # would be freed after QGIS exits (a crash at interpreter exit)
        del layer
        from qgis.core import QgsProcessingException

        with pytest.raises(QgsProcessingException, match="run it with Map flood"):
            processing.run("sarmae:runmodel", {
                "INPUT": after, "MODEL": str(models["flood"]),
                "OUTPUT": str(tmp_path / "r.gpkg"),
            })  # fmt: skip
        assert 0.2 * 2.4 < out["FLOOD_AREA_KM2"] < 2.4
        import rasterio

        with rasterio.open(out["OUTPUT_RASTER"]) as r:
            classes = r.read(1)
        outside = np.delete(classes, np.r_[FIELD[0]], axis=0)
        assert (classes[FIELD] == 1).mean() > 0.2 and (outside == 1).mean() < 0.05
    finally:
        plugin.unload()


def test_processing_map_flood_with_reference_water_and_hand(
    qgis_processing, pair, models, tmp_path
):
    import processing
    import rasterio
    from qgis.core import QgsProcessingException

    from qgis_plugin import classFactory

    after, before = (layer.source() for layer in pair)
    with rasterio.open(S1_VV_DB) as src:
        db, profile = src.read(1), src.profile
    lagoon = db < -19.0  # permanent water: the Camargue lagoons before the event
    reference = tmp_path / "reference.tif"
    with rasterio.open(reference, "w", **(profile | dict(dtype="uint8", nodata=None))) as dst:
        dst.write(lagoon.astype(np.uint8)[None])
    heights = np.tile(np.linspace(0, 40, db.shape[1], dtype=np.float32), (db.shape[0], 1))
    hand = tmp_path / "hand.tif"
    with rasterio.open(hand, "w", **(profile | dict(dtype="float32", nodata=None))) as dst:
        dst.write(heights[None])
    plugin = classFactory(None)
    plugin.initProcessing()
    try:
        common = {"INPUT": after, "REFERENCE_WATER": str(reference), "HAND": str(hand),
                  "OUTPUT_LIKELIHOOD": str(tmp_path / "l.tif"),
                  "OUTPUT_EXCLUSION": str(tmp_path / "x.tif"),
                  "OUTPUT_WATER": str(tmp_path / "w.tif")}  # fmt: skip
        # with the before scene and a two-date model
        out = processing.run("sarmae:mapflood", common | {
            "BEFORE": before, "MODEL": str(models["flood"]),
            "OUTPUT": str(tmp_path / "flood.gpkg"), "OUTPUT_RASTER": str(tmp_path / "f.tif"),
        })  # fmt: skip
        with rasterio.open(out["OUTPUT_RASTER"]) as r:
            classes = r.read(1)
        with rasterio.open(out["OUTPUT_LIKELIHOOD"]) as r:
            percent = r.read(1)
        with rasterio.open(out["OUTPUT_EXCLUSION"]) as r:
            exclusion = r.read(1)
        valid = classes != 255
        assert (classes[lagoon & valid] == 2).all()  # reference water, never flood
        assert ((heights > 15) & valid & ~lagoon == (classes == 3)).all()
        assert ((exclusion == 1) == (classes == 3)).all()
        assert percent[valid & (classes != 3)].max() <= 100 and (percent[classes == 3] == 255).all()
        assert out["EXCLUDED_KM2"] == pytest.approx((classes == 3).sum() * 400 / 1e6, rel=1e-3)
        assert out["REFERENCE_WATER_KM2"] > 1.0 and out["FLOOD_AREA_KM2"] > 0.2
        with rasterio.open(out["OUTPUT_WATER"]) as r:  # the bundled water model's map
            observed = r.read(1)
        assert (observed[lagoon & valid] == 1).mean() > 0.9
        # without the before scene: the water model's water minus the reference water
        alone = processing.run("sarmae:mapflood", {
            "INPUT": after, "REFERENCE_WATER": str(reference), "MODEL": str(models["water"]),
            "OUTPUT": str(tmp_path / "alone.gpkg"), "OUTPUT_RASTER": str(tmp_path / "a.tif"),
        })  # fmt: skip
        with rasterio.open(alone["OUTPUT_RASTER"]) as r:
            by_water = r.read(1)
        assert (by_water[lagoon & (by_water != 255)] == 2).all()
        assert alone["FLOOD_AREA_KM2"] > 0.0
        with pytest.raises(QgsProcessingException, match=r"BEFORE .* or REFERENCE_WATER"):
            processing.run("sarmae:mapflood", {
                "INPUT": after, "MODEL": str(models["flood"]),
                "OUTPUT": str(tmp_path / "none.gpkg"),
            })  # fmt: skip
        assert not (tmp_path / "none.gpkg").exists()
    finally:
        plugin.unload()


def test_dock_maps_flood_against_reference_water_polygons_and_hand(
    plugin, pair, project, qgis_iface, models, tmp_path
):
    """No before layer: the water model's water minus the reference water polygons, HAND above
    15 m excluded; the class raster added with its four classes."""
    import rasterio
    from osgeo import gdal, ogr

    from qgis_plugin.dock import SarmaeDock

    after, _ = pair
    with rasterio.open(S1_VV_DB) as src:
        db, profile = src.read(1), src.profile
    lagoon = db < -19.0
    mask_tif = tmp_path / "lagoon.tif"
    with rasterio.open(mask_tif, "w", **(profile | dict(dtype="uint8", nodata=None))) as dst:
        dst.write(lagoon.astype(np.uint8)[None])
    gpkg = tmp_path / "reference_water.gpkg"
    src = gdal.Open(str(mask_tif))
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(gpkg))
    lyr = ds.CreateLayer("lagoons", src.GetSpatialRef(), ogr.wkbPolygon)
    band = src.GetRasterBand(1)
    gdal.Polygonize(band, band, lyr, -1)
    lyr, ds, src, band = None, None, None, None
    heights = np.tile(np.linspace(0, 40, db.shape[1], dtype=np.float32), (db.shape[0], 1))
    hand_tif = tmp_path / "hand.tif"
    with rasterio.open(hand_tif, "w", **(profile | dict(dtype="float32", nodata=None))) as dst:
        dst.write(heights[None])
    reference = QgsVectorLayer(f"{gpkg}|layername=lagoons", "lagoons", "ogr")
    hand = add_layer(project, hand_tif, "HAND")
    project.addMapLayer(reference)
    dock = SarmaeDock(project)
    dock.layer_combo.setLayer(after)
    dock.reference_combo.setLayer(reference)
    dock.hand_combo.setLayer(hand)
    params = dock.parameters("flood")
    assert (params.reference_layer_id, params.hand_layer_id) == (reference.id(), hand.id())
    params = RunParameters(**{**params.__dict__, "model": str(models["water"]), "add_mask": True})
    assert plugin.start(params, background=False) is not None
    outcome = plugin.last_outcome
    assert outcome.ok, outcome.error
    masks = [lyr for lyr in project.mapLayers().values()
             if isinstance(lyr, QgsRasterLayer) and lyr.name().startswith("Flood")]  # fmt: skip
    assert len(masks) == 1
    with rasterio.open(masks[0].source()) as r:
        classes = r.read(1)
    valid = classes != 255
    assert (classes[lagoon & valid] == 2).mean() > 0.97  # polygons: centre-in rule at edges
    assert (classes[(heights > 15) & valid & ~lagoon] == 3).all()
    field = np.zeros(classes.shape, bool)
    field[FIELD] = True
    assert (classes[field & ~lagoon & (heights <= 15)] == 1).mean() > 0.8
    del masks, reference, hand
