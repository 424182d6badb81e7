"""The two IO backends side by side: GDAL's bindings and rasterio read, write, trace and
project alike, a whole run gives the same products, and the library runs without ``osgeo``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.warp import transform as warp_transform

from sarmae_core.errors import ConfigError, RasterError
from sarmae_core.inference import predict
from sarmae_core.inference.geo.geometry import box_polygon
from sarmae_core.inference.geo.georef import Transform
from sarmae_core.inference.io import raster_io

from ..conftest import S1_VV_DB
from .helpers import features, layer_info, read, s1_db, write_raster

BACKENDS = ("gdal", "rasterio")


@pytest.fixture(autouse=True)
def io_backend() -> str:
    """These tests compare both backends in one test (no per-backend run)."""
    return "both"


@pytest.fixture(scope="module")
def ios() -> dict[str, raster_io.RasterIO]:
    return {name: raster_io.get(name) for name in BACKENDS}


def test_both_backends_implement_the_one_interface(ios) -> None:
    """Every operation of RasterIO, implemented twice; CRS values carry no backend (issue 14)."""
    import dataclasses
    import inspect

    from sarmae_core.inference.geo.georef import Crs

    wanted = {n for n, _ in inspect.getmembers(raster_io.RasterIO) if not n.startswith("_")}
    wanted |= set(raster_io.RasterIO.__annotations__)
    assert {"open_raster", "warp", "create_geotiff", "trace", "union", "feature_writer"} <= wanted
    for name, fileio in ios.items():
        assert fileio.name == name
        for op in wanted - {"name"}:
            assert callable(getattr(fileio, op)), f"{name} lacks {op}"
        assert raster_io.get(fileio) is fileio  # a backend object passes through
    assert [f.name for f in dataclasses.fields(Crs)] == [
        "wkt",
        "epsg",
        "is_geographic",
        "metres_per_unit",
        "native",
    ]


def test_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(raster_io.ENV, raising=False)
    assert raster_io.get().name == "gdal"  # GDAL's bindings import here
    assert raster_io.get("rasterio").name == "rasterio"
    monkeypatch.setenv(raster_io.ENV, "rasterio")
    assert raster_io.get().name == "rasterio" and raster_io.get("gdal").name == "gdal"
    monkeypatch.setenv(raster_io.ENV, "fiona")
    with pytest.raises(ConfigError, match=r"unknown IO backend 'fiona' \(from \$SARMAE_IO\)"):
        raster_io.get()
    # Without GDAL's bindings, auto falls back to rasterio and gdal says what is missing.
    monkeypatch.delenv(raster_io.ENV)
    monkeypatch.setattr(raster_io, "_loaded", {})
    monkeypatch.setitem(sys.modules, "osgeo", None)
    monkeypatch.delitem(sys.modules, "sarmae_core.inference.io.gdal_io", raising=False)
    assert raster_io.get().name == "rasterio"
    with pytest.raises(ConfigError, match=r"needs GDAL's Python bindings \(osgeo\)"):
        raster_io.get("gdal")


def _tagged_raster(tmp_path: Path) -> Path:
    """Two bands with descriptions, units and tags, nodata, in EPSG:32631."""
    x = s1_db()
    src = write_raster(tmp_path / "tagged.tif", np.stack([x, x - 6]), nodata=-99.0,
                       descriptions=["VV", "VH"])  # fmt: skip
    with rasterio.open(src, "r+") as ds:
        ds.update_tags(1, POLARISATION="VV")
        ds.units = ("dB", "dB")
    return src


def test_rasters_read_alike(tmp_path: Path, ios: dict[str, raster_io.RasterIO]) -> None:
    path = str(_tagged_raster(tmp_path))
    g, r = (ios[n].open_raster(path) for n in BACKENDS)
    try:
        for attr in ("width", "height", "count", "dtypes", "nodata", "transform", "gcp_count",
                     "descriptions", "units", "colorinterp"):  # fmt: skip
            assert getattr(g, attr) == getattr(r, attr), attr
        assert g.dtypes == ("float32", "float32") and g.units == ("dB", "dB")
        assert g.crs == r.crs and g.crs.to_string() == r.crs.to_string() == "EPSG:32631"
        assert g.tags(1) == r.tags(1) == {"POLARISATION": "VV"}
        assert g.has_mask([1, 2]) is r.has_mask([1, 2]) is False
        np.testing.assert_array_equal(
            g.read([2, 1], 10, 20, 30, 40), r.read([2, 1], 10, 20, 30, 40)
        )
        np.testing.assert_array_equal(
            g.read_masks([1], 0, 0, 50, 60), r.read_masks([1], 0, 0, 50, 60)
        )
        for nearest in (True, False):
            a, b = g.read_resampled(1, 50, 70, nearest), r.read_resampled(1, 50, 70, nearest)
            np.testing.assert_allclose(a.filled(0), b.filled(0), rtol=1e-5)
    finally:
        g.close()
        r.close()
    for fileio in ios.values():
        with pytest.raises(RasterError, match="is not a raster GDAL can read"):
            fileio.open_raster(str(Path(__file__)))


def test_warped_views_agree(tmp_path: Path, ios: dict[str, raster_io.RasterIO]) -> None:
    """A GCP-only file warped on GDAL's suggested grid, then resampled to 40 m by averaging."""
    with rasterio.open(S1_VV_DB) as ds:
        t, crs = ds.transform, ds.crs
    rows, cols = np.meshgrid(np.linspace(0, 217, 5), np.linspace(0, 268, 5), indexing="ij")
    lon, lat = warp_transform(crs, "EPSG:4326", t.c + cols.ravel() * t.a, t.f + rows.ravel() * t.e)
    gcps = [GroundControlPoint(*v) for v in zip(rows.ravel(), cols.ravel(), lon, lat, strict=True)]
    path = tmp_path / "gcps.tif"
    with rasterio.open(path, "w", driver="GTiff", width=268, height=217, count=1,
                       dtype="float32", gcps=gcps, crs="EPSG:4326") as ds:  # fmt: skip
        ds.write(s1_db(), 1)
    views = {}
    for name, fileio in ios.items():
        src = fileio.open_raster(str(path))
        assert src.crs is None and src.gcp_count == 25 and src.gcp_crs.epsg == 4326
        warped = fileio.warp(src, src.gcp_crs, None, "bilinear", (None, float("nan")))
        t2 = warped.transform.then(Transform.scale(2, 2))
        w, h = warped.width // 2, warped.height // 2
        coarse = fileio.warp(warped, warped.crs, (t2, w, h), "average", (None, float("nan")))
        data, mask = coarse.read([1], 0, 0, h, w)[0], coarse.read_masks([1], 0, 0, h, w)[0]
        views[name] = (warped.transform, warped.width, warped.height, coarse.transform, data, mask)
        coarse.close()
        warped.close()
        src.close()
    g, r = views["gdal"], views["rasterio"]
    assert g[1:3] == r[1:3]
    np.testing.assert_allclose(g[0], r[0], rtol=1e-9)
    np.testing.assert_allclose(g[3], r[3], rtol=1e-9)
    both = (g[5] > 0) & (r[5] > 0)
    # GDAL 3.6 (osgeo here) and rasterio's GDAL may differ on a few edge pixels of the warp.
    assert both.mean() > 0.8 and (g[5] != r[5]).mean() < 0.03
    diff = np.abs(g[4][both] - r[4][both])
    assert np.median(diff) < 0.02 and diff.max() < 0.5  # dB


def test_geotiffs_written_alike(tmp_path: Path, ios: dict[str, raster_io.RasterIO]) -> None:
    from sarmae_core.inference.io.writers import GeoTiffWriter

    crs_text = "EPSG:32631"
    t = Transform.from_origin(620000.0, 4830000.0, 20.0, 20.0)
    data = (np.arange(600 * 700) % 3).astype(np.uint8).reshape(1, 600, 700)
    for name, fileio in ios.items():
        w = GeoTiffWriter(fileio, tmp_path / f"{name}.tif", 700, 600, 1, "uint8",
                          fileio.parse_crs(crs_text), t, 255, descriptions=["class"],
                          colormap={0: (0, 0, 0, 0), 1: (0, 112, 255, 255)},
                          tags={"class_names": '["a", "b"]'})  # fmt: skip
        w.write(0, data[:, :256])
        w.write(256, data[:, 256:])
        w.finish()
        w.to_cog(tmp_path / f"{name}_cog.tif")
    profiles = {}
    for name in BACKENDS:
        for suffix in ("", "_cog"):
            with rasterio.open(tmp_path / f"{name}{suffix}.tif") as ds:
                np.testing.assert_array_equal(ds.read(), data)
                assert ds.colormap(1)[1] == (0, 112, 255, 255)
                assert ds.tags()["class_names"] == '["a", "b"]'
                assert ds.descriptions == ("class",) and ds.overviews(1) == [2, 4]
                profiles[name + suffix] = {
                    k: ds.profile.get(k) for k in ("crs", "transform", "nodata", "dtype",
                                                   "tiled", "blockxsize", "compress")
                }  # fmt: skip
                if suffix:
                    assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    assert profiles["gdal"] == profiles["rasterio"] == profiles["gdal_cog"]
    assert profiles["gdal"]["blockxsize"] == 256 and profiles["gdal"]["compress"] == "deflate"
    assert profiles["gdal"]["transform"] == rasterio.Affine(*t)


def test_crs_facts_and_reprojection_agree(ios: dict[str, raster_io.RasterIO]) -> None:
    laea = "+proj=laea +lat_0=43.5 +lon_0=4.5 +datum=WGS84 +units=m +no_defs"
    for text, epsg, geographic in (("EPSG:32631", 32631, False), ("EPSG:4326", 4326, True),
                                   (laea, None, False)):  # fmt: skip
        g, r = (ios[n].parse_crs(text) for n in BACKENDS)
        assert (g.epsg, g.is_geographic, g.metres_per_unit) == (r.epsg, r.is_geographic, 1.0)
        assert (g.epsg, g.is_geographic) == (epsg, geographic)
    x, y = np.array([620000.0, 625000.0]), np.array([4826000.0, 4830000.0])
    out = {}
    for name, fileio in ios.items():
        utm, wgs = fileio.parse_crs("EPSG:32631"), fileio.parse_crs("EPSG:4326")
        out[name] = fileio.transform_xy(utm, wgs, x, y)
        assert 4.4 < out[name][0][0] < 4.6 and 43.5 < out[name][1][0] < 43.7  # lon, lat order
    np.testing.assert_allclose(out["gdal"], out["rasterio"], atol=1e-9)
    a = ios["gdal"].parse_crs("EPSG:32631")
    assert a == ios["rasterio"].parse_crs(a.wkt) and a != ios["gdal"].parse_crs("EPSG:32632")


def _classes() -> np.ndarray:
    x = s1_db()
    classes = np.where(x < -15, 1, 0).astype(np.uint8)
    classes[x < -22] = 2
    return classes


def _shoelace(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * abs(float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1])))


def _area(polygon: list[np.ndarray]) -> float:
    return _shoelace(polygon[0]) - sum(_shoelace(r) for r in polygon[1:])


def test_a_trace_stops_at_a_cancel_where_the_backend_can(
    ios: dict[str, raster_io.RasterIO],
) -> None:
    """GDAL's bindings pass the cancel to GDALPolygonize's progress callback (checked every
    line), so a trace stops midway; rasterio's shapes takes none and runs to its end (a strip
    is sized for that)."""
    from sarmae_core.errors import CancelledError

    classes = _classes()
    calls = [0]

    def check() -> None:
        calls[0] += 1
        if calls[0] > 3:
            raise CancelledError("cancelled by the user; nothing was written")

    with pytest.raises(CancelledError):
        ios["gdal"].trace(classes, 0, check)
    assert calls[0] == 4  # stopped at the first check that raised, mid-trace
    calls[0] = 0
    assert len(ios["rasterio"].trace(classes, 0, check)) > 50 and calls[0] == 0
    calls[0] = -(10**9)  # never raises: the same polygons as without a check
    assert len(ios["gdal"].trace(classes, 0, check)) == len(ios["gdal"].trace(classes, 0))


def test_polygons_traced_written_and_read_alike(
    tmp_path: Path, ios: dict[str, raster_io.RasterIO]
) -> None:
    classes = _classes()
    traced = {}
    for name, fileio in ios.items():
        traced[name] = sorted((value, len(p), _area(p)) for p, value in fileio.trace(classes, 100))
    (g, r) = (np.array(traced[n]) for n in BACKENDS)
    assert len(g) == len(r) > 50 and {1, 2} == set(g[:, 0])
    # values, rings and areas per polygon, in pixels: the class map's own pixel counts
    np.testing.assert_array_equal(g, r)
    for value in (1, 2):
        assert g[g[:, 0] == value, 2].sum() == (classes == value).sum()
    pixels = [p for p, _ in ios["gdal"].trace(classes, 100)]
    ys = np.concatenate([r[:, 1] for p in pixels for r in p])
    assert ys.min() >= 100 and ys.max() <= 100 + classes.shape[0]  # y is row0 + the row
    # Each backend's GeoPackage, read by both backends and by OGR.
    polygon = [*box_polygon((620000, 4826000, 621000, 4827000)),
               box_polygon((620200, 4826200, 620400, 4826400))[0][::-1]]  # fmt: skip
    for name, fileio in ios.items():
        path = tmp_path / f"{name}.gpkg"
        fields = [("class", "int"), ("class_name", "str"), ("area_m2", "real")]
        out = fileio.feature_writer(path, "water", fileio.parse_crs("EPSG:32631"), fields)
        out.add(polygon, **{"class": 1, "class_name": "water", "area_m2": 960000.0})
        out.add(polygon, **{"class": 1, "class_name": "water", "area_m2": None})
        out.close()
        assert out.count == 2
        feats = features(path)
        assert [f["area_m2"] for f in feats] == [960000.0, None]
        assert feats[0]["geometry"].GetArea() == pytest.approx(960000.0)
        assert feats[0]["envelope"] == (620000, 621000, 4826000, 4827000)
        name_, wkt = layer_info(path)
        assert name_ == "water" and "32631" in wkt
        for reader in ios.values():
            polygons, crs = reader.read_polygons(path)
            assert crs.epsg == 32631 and len(polygons) == 2
            assert [len(r) for r in polygons[0]] == [81, 81]
            np.testing.assert_allclose(polygons[0][1], polygon[1])


def test_simplification_in_both_backends(
    tmp_path: Path, ios: dict[str, raster_io.RasterIO]
) -> None:
    big = max((p for p, _ in ios["gdal"].trace(_classes(), 0)), key=_area)
    for backend in ios.values():
        simple = backend.simplify(big, 1.5)  # pixels
        assert len(simple[0]) < 0.5 * len(big[0]) and len(simple) <= len(big)
        assert _area(simple) == pytest.approx(_area(big), rel=0.05)


@pytest.mark.parametrize("aoi", [None, "polygon"])
def test_a_whole_run_gives_the_same_products(
    tmp_path: Path, s1_db: Path, models, aoi: str | None
) -> None:
    area = None
    if aoi:  # a triangle in EPSG:4326: reprojected, rasterised as a mask, windowed
        with rasterio.open(s1_db) as ds:
            b = ds.bounds
        xs = [b.left + 300, b.right - 300, b.left + 300]
        ys = [b.bottom + 300, b.bottom + 300, b.top - 300]
        lon, lat = warp_transform("EPSG:32631", "EPSG:4326", xs, ys)
        ring = [[x, y] for x, y in zip(lon, lat, strict=True)]
        area = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    runs = {}
    for name in BACKENDS:
        out = tmp_path / name
        out.mkdir()
        runs[name] = predict(s1_db, models["water"], out / "w.tif", io_backend=name, aoi=area,
                             aoi_crs="EPSG:4326" if aoi else None, fill_holes_m2=2000,
                             products=("class", "probability", "vector"))  # fmt: skip
        assert runs[name].io_backend == name
    g, r = runs["gdal"], runs["rasterio"]
    for product in ("class", "probability"):
        (a, pa), (b, pb) = read(g.files[product]), read(r.files[product])
        np.testing.assert_array_equal(a, b)
        for key in ("crs", "transform", "width", "height", "dtype"):
            assert pa[key] == pb[key], key
        assert pa["nodata"] == pb["nodata"] or (np.isnan(pa["nodata"]) and np.isnan(pb["nodata"]))
    fg, fr = features(g.files["vector"]), features(r.files["vector"])
    assert len(fg) == len(fr) > 10
    ag, ar = sorted(f["area_m2"] for f in fg), sorted(f["area_m2"] for f in fr)
    np.testing.assert_allclose(ag, ar, rtol=1e-6)
    assert g.summary.water_area_km2 == pytest.approx(r.summary.water_area_km2, rel=1e-9)
    assert g.summary.vector_area_km2 == pytest.approx(r.summary.vector_area_km2, rel=1e-6)
    (name_g, wkt_g), (name_r, wkt_r) = layer_info(g.files["vector"]), layer_info(r.files["vector"])
    assert name_g == name_r == "water" and "32631" in wkt_g and "32631" in wkt_r


def test_ships_are_the_same_with_both_backends(tmp_path: Path, models) -> None:
    x = s1_db()
    for r, c in ((100, 48), (20, 160), (180, 220)):
        x[r : r + 12, c : c + 16] = 10.0  # bright targets in the real scene
    scene = write_raster(tmp_path / "harbour_VV_db.tif", x)
    found = {}
    for name in BACKENDS:
        res = predict(scene, models["ships"], tmp_path / f"{name}.gpkg", io_backend=name)
        found[name] = sorted(
            (round(f["score"], 5), round(f["centre_x"], 3), round(f["centre_y"], 3),
             round(f["length_m"], 3), round(f["lon"], 8))
            for f in features(res.files["vector"])
        )  # fmt: skip
    assert found["gdal"] == found["rasterio"] and len(found["gdal"]) == 3


def test_the_library_runs_without_gdal_bindings(tmp_path: Path, models) -> None:
    """A plain pip install: osgeo cannot be imported; rasterio does everything."""
    x = s1_db()
    x[100:116, 48:64] = 10.0  # a bright target
    harbour = write_raster(tmp_path / "harbour_VV_db.tif", x)
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["osgeo"] = None  # as where GDAL's Python bindings are not installed
        from sarmae_core.inference import predict
        out = {str(tmp_path)!r}
        res = predict({str(S1_VV_DB)!r}, {str(models["water"])!r}, out + "/w.tif",
                      products=("class", "vector"), simplify_m=20, aoi={str(tmp_path / "a.gpkg")!r})
        ships = predict({str(harbour)!r}, {str(models["ships"])!r}, out + "/s.gpkg")
        from sarmae_core.inference.products.quicklook import boxes_from_gpkg
        boxes = boxes_from_gpkg(ships.files["vector"], {str(harbour)!r})
        print(json.dumps({{"io": res.io_backend, "area": res.summary.vector_area_km2,
                           "ships": ships.summary.ship_count, "boxes": len(boxes),
                           "osgeo": [m for m in sys.modules if m.startswith("osgeo")
                                     and sys.modules[m] is not None]}}))
    """)
    # The area of interest: a GeoPackage written by the rasterio backend itself.
    fileio = raster_io.get("rasterio")
    aoi = fileio.feature_writer(tmp_path / "a.gpkg", "area", fileio.parse_crs("EPSG:32631"), [])
    aoi.add(box_polygon((620500, 4826500, 623500, 4829500)))
    aoi.close()
    env = {k: v for k, v in os.environ.items() if k != raster_io.ENV}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["io"] == "rasterio" and got["osgeo"] == []
    assert got["area"] > 0.5 and got["ships"] == got["boxes"] == 1


def test_rasterio_backend_writes_geopackage_1_2_with_nulls(tmp_path: Path) -> None:
    """pyogrio writes what the sqlite writer did: GeoPackage 1.2 (read without a warning by
    Debian 12's GDAL 3.6 / QGIS 3.22), null fields and a null geometry kept as nulls."""
    import sqlite3

    from osgeo import ogr

    fileio = raster_io.get("rasterio")
    path = tmp_path / "cat.gpkg"
    out = fileio.feature_writer(path, "scenes", fileio.parse_crs("EPSG:4326"),
                                [("n", "int"), ("km2", "real"), ("error", "str")])  # fmt: skip
    out.add(None, n=None, km2=1.5, error="unreadable")
    out.add(box_polygon((0.0, 0.0, 1.0, 1.0)), n=3)
    out.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (10200,)
    ds = ogr.Open(str(path))
    rows = [(f.GetField("n"), f.GetField("km2"), f.GetField("error"), f.GetGeometryRef() is None)
            for f in ds.GetLayer(0)]  # fmt: skip
    assert rows == [(None, 1.5, "unreadable", True), (3, None, None, False)]
    polygons, crs = fileio.read_polygons(path)
    assert len(polygons) == 1 and crs.epsg == 4326
