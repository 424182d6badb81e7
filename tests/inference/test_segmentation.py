"""Water mapping end to end on the real Sentinel-1 scene: identity, seams, rasters, polygons."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sarmae_core.inference import predict
from sarmae_core.inference.sweep.windows import axis_starts

from .helpers import (
    features,
    layer_info,
    make_seg_onnx,
    read,
    s1_db,
    seg_info,
    to_epsg4326,
    write_raster,
)


def test_identity_model_gives_back_the_input_with_nodata(tmp_path: Path, out: Path, identity):
    x = s1_db()
    x[:, :11] = -99  # a nodata border, as at the edge of a Sentinel-1 scene
    x[100:130, 40:90] = -99
    x[5, 200] = np.nan
    src = write_raster(tmp_path / "scene_db.tif", x, nodata=-99)
    res = predict(src, identity, out / "id.tif", products=("probability",), tile=64, overlap=16)
    y, _profile = read(res.files["probability"])
    valid = (x != -99) & np.isfinite(x)
    np.testing.assert_allclose(y[valid], x[valid], rtol=1e-6)
    assert (y[~valid] == -99).all()  # nodata in the output exactly where the input had none
    with rasterio.open(src) as s, rasterio.open(res.files["probability"]) as o:
        assert (o.crs, o.transform, o.nodata) == (s.crs, s.transform, s.nodata)
        assert o.profile["tiled"] and o.compression.name == "deflate" and o.overviews(1)
    assert res.summary.pixels_processed == valid.sum()
    assert len(res.summary.timings) >= 4


def _jumps(p: np.ndarray, tile: int, overlap: int, axis: int) -> tuple[float, float, float, float]:
    """Largest and mean |difference| across tile borders, and across every other pixel pair."""
    starts = axis_starts(p.shape[axis], tile, overlap)
    borders = set(starts[1:]) | {s + tile for s in starts[:-1]}
    diffs = np.moveaxis(np.abs(np.diff(p, axis=axis)), axis, 0)  # diffs[i]: pixel i vs i + 1
    at_border = np.isin(np.arange(1, p.shape[axis]), sorted(borders))
    b, inside = diffs[at_border], diffs[~at_border]
    return b.max(), inside.max(), b.mean(), inside.mean()


@pytest.mark.parametrize("axis", [0, 1])
def test_blended_output_has_no_seams(s1_db: Path, out: Path, models, axis: int) -> None:
    # The 9x9 blur pads with zeros inside the graph: 4 px at every tile edge are distorted.
    res = predict(s1_db, models["water9"], out / "b.tif", products=("probability",), overlap=16)
    p, _ = read(res.files["probability"])
    b_max, in_max, b_mean, in_mean = _jumps(p, 64, 16, axis)
    assert b_max <= in_max
    assert b_mean <= 1.25 * in_mean  # ten border lines against ~250 others: sampling noise
    # The same check sees the seams of tiles that merely abut: the test can fail.
    res0 = predict(s1_db, models["water9"], out / "s.tif", products=("probability",), overlap=0)
    p0, _ = read(res0.files["probability"])
    b0_max, in0_max, b0_mean, in0_mean = _jumps(p0, 64, 0, axis)
    assert b0_max > in0_max and b0_mean > 1.5 * in0_mean


def test_raster_smaller_than_one_tile(tmp_path: Path, out: Path, models, identity) -> None:
    x = s1_db()[50:80, 60:100]  # 30 x 40 px, tile 64
    src = write_raster(tmp_path / "small_db.tif", x)
    res = predict(src, identity, out / "id.tif", products=("probability",))
    y, _profile = read(res.files["probability"])
    assert y.shape == (30, 40)
    np.testing.assert_allclose(y, x, rtol=1e-6)
    res = predict(src, models["water"], out / "w.tif")
    assert read(res.files["class"])[0].shape == (30, 40)


def test_large_tiles_go_to_the_model_in_smaller_batches_on_a_cpu(tmp_path: Path, out: Path):
    """A CPU model call holds at most CPU_BATCH_PIXELS (2 tiles of 512 px, 8 of 256 px), so
    that a model on large tiles keeps its working memory bounded; the map is the same."""
    from sarmae_core.inference.model.backends import CallableBackend
    from sarmae_core.inference.predict import model_batch

    src = write_raster(tmp_path / "big_db.tif", np.tile(s1_db(), (4, 4)))  # 868 x 1072 px
    calls: list[int] = []

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        calls.append(len(batch))
        return {"probabilities": batch.copy()}

    be = CallableBackend(run, seg_info(class_names=["value"]), name="identity")
    maps = {}
    for tile in (256, 512):
        calls.clear()
        res = predict(src, be, out / f"p{tile}.tif", products=("probability",), tile=tile,
                      overlap=tile // 4, batch_size=8)  # fmt: skip
        maps[tile] = read(res.files["probability"])[0]
        assert max(calls) == (8 if tile == 256 else 2), calls
    np.testing.assert_allclose(maps[512], maps[256], rtol=1e-6)  # identity: the input back
    assert model_batch(be, 8, 512) == 2 and model_batch(be, 1, 512) == 1
    assert model_batch(be, 8, 768) == 1  # one tile at least
    be.providers = ["CUDAExecutionProvider"]  # a GPU's memory is its own: the batch asked for
    assert model_batch(be, 8, 512) == 8


def test_class_map_and_water_polygons(s1_db: Path, out: Path, models) -> None:

    res = predict(s1_db, models["water"], out / "water.tif", products=("class", "vector"))
    assert set(res.files) == {"class", "vector"} and res.files["vector"].suffix == ".gpkg"
    classes, profile = read(res.files["class"])
    assert set(np.unique(classes)) <= {0, 1} and profile["nodata"] == 255
    with rasterio.open(res.files["class"]) as ds:
        assert ds.colormap(1)[1][:3] == (0, 112, 255) and "water" in ds.tags()["class_names"]
    s = res.summary
    # 20 m pixels in UTM: about 400 m2 each (UTM's scale factor makes ground pixels ~0.04 % larger)
    assert s.water_area_km2 == pytest.approx((classes == 1).sum() * 400 / 1e6, rel=2e-3)
    feats = features(res.files["vector"])
    areas = [f["area_m2"] for f in feats]
    assert len(areas) > 10 and all(a >= 399 for a in areas)
    assert sum(areas) / 1e6 == pytest.approx(s.water_area_km2, rel=1e-6)
    assert s.vector_area_km2 == pytest.approx(s.water_area_km2, rel=1e-6)
    assert {f["class_name"] for f in feats} == {"water"}
    name, wkt = layer_info(res.files["vector"])
    assert name == "water" and "32631" in wkt


def test_polygon_options_filter_fill_and_simplify(s1_db: Path, out: Path, models) -> None:
    def polygons(name: str, **options) -> list:
        res = predict(s1_db, models["water"], out / f"{name}.gpkg", **options)
        return [(f["area_m2"], f["geometry"]) for f in features(res.files["vector"])]

    raw = polygons("raw")
    big = polygons("big", min_area_m2=20_000)
    assert 0 < len(big) < len(raw) and min(a for a, _ in big) >= 20_000
    # the mask is sieved before tracing (sarmae_core.inference.products.sieve): exactly the
    # polygons the area filter alone keeps
    kept = sorted(a for a, _ in raw if a >= 20_000)
    assert sorted(a for a, _ in big) == pytest.approx(kept, rel=1e-9)

    def holes(ps: list) -> int:
        return sum(
            g.GetGeometryRef(i).GetGeometryCount() - 1
            for _, g in ps
            for i in range(g.GetGeometryCount())
        )

    filled = polygons("filled", fill_holes_m2=math.inf)
    assert holes(raw) > 0 and holes(filled) == 0
    assert sum(a for a, _ in filled) > sum(a for a, _ in raw)

    def vertices(ps: list) -> int:
        return sum(g.GetGeometryRef(0).GetGeometryRef(0).GetPointCount() for _, g in ps)

    simple = polygons("simple", simplify_m=30, min_area_m2=20_000)
    assert vertices(simple) < 0.7 * vertices(big)
    assert sum(a for a, _ in simple) == pytest.approx(sum(a for a, _ in big), rel=0.05)


def test_water_area_is_the_same_in_epsg4326(tmp_path: Path, s1_db: Path, out: Path) -> None:
    model = make_seg_onnx(tmp_path / "w.onnx", seg_info(resolution_m=None), kernel=1)
    utm = predict(s1_db, model, out / "utm.gpkg")
    geo_raster = to_epsg4326(s1_db, tmp_path / "scene_4326_db.tif")
    geo = predict(geo_raster, model, out / "geo.gpkg")
    assert geo.crs == "EPSG:4326"
    # Nearest-neighbour reprojection moves class edges by up to a pixel: agree within 2 %.
    assert geo.summary.water_area_km2 == pytest.approx(utm.summary.water_area_km2, rel=0.02)
    assert geo.summary.vector_area_km2 == pytest.approx(geo.summary.water_area_km2, rel=1e-3)


def _quadrangle_km2(lat0: float, lat1: float, dlon: float) -> float:
    """Exact area of a latitude/longitude box on the WGS84 ellipsoid (authalic formula)."""
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    e = math.sqrt(e2)

    def q(phi: float) -> float:
        s = math.sin(math.radians(phi))
        return s / (1 - e2 * s * s) + math.log((1 + e * s) / (1 - e * s)) / (2 * e)

    return a * a * (1 - e2) / 2 * math.radians(dlon) * (q(lat1) - q(lat0)) / 1e6


def test_area_of_a_known_geographic_box(tmp_path: Path, out: Path) -> None:
    # A 1 x 0.5 degree lake at 60 N (-30 dB) in 0 dB land, 0.02 degree pixels, EPSG:4326.
    x = np.zeros((45, 70), np.float32)
    x[10:35, 10:60] = -30.0
    t = rasterio.transform.from_origin(10.0 - 0.2, 60.7, 0.02, 0.02)
    src = write_raster(tmp_path / "lake_db.tif", x, crs="EPSG:4326", transform=t)
    model = make_seg_onnx(tmp_path / "w.onnx", seg_info(resolution_m=None), kernel=1)
    res = predict(src, model, out / "lake.gpkg")
    expected = _quadrangle_km2(60.0, 60.5, 1.0)  # about 3081 km2
    assert res.summary.water_area_km2 == pytest.approx(expected, rel=1e-3)
    assert res.summary.vector_area_km2 == pytest.approx(expected, rel=1e-4)


def test_cloud_optimized_geotiff(s1_db: Path, out: Path, models) -> None:
    res = predict(s1_db, models["water"], out / "cog.tif", products=("class", "probability"),
                  cog=True)  # fmt: skip
    for path in res.files.values():
        with rasterio.open(path) as ds:
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert ds.overviews(1)
    assert sorted(p.name for p in out.iterdir()) == ["cog.tif", "cog_probability.tif"]


def _model_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("sarmae-model")]


def test_the_model_runs_a_batch_ahead_in_a_worker_and_gives_the_same_map(
    s1_db: Path, out: Path, identity
) -> None:
    import threading

    threads: set[str] = set()

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        threads.add(threading.current_thread().name)
        return identity.run(batch)

    from sarmae_core.inference import CallableBackend

    ahead = CallableBackend(run, identity.info, name="identity")
    maps = []
    for batch_size in (1, 3, 64):
        res = predict(s1_db, ahead, out / f"b{batch_size}.tif", products=("probability",),
                      batch_size=batch_size)  # fmt: skip
        maps.append(read(res.files["probability"])[0])
        assert res.summary.timings["wait"] >= 0 and res.summary.tiles_run == res.summary.tiles
    assert threads and all(t.startswith("sarmae-model") for t in threads)  # never the caller's
    np.testing.assert_array_equal(maps[0], maps[1])
    np.testing.assert_array_equal(maps[0], maps[2])
    assert _model_threads() == []  # the worker is gone with the run


def test_a_model_failing_mid_scene_stops_the_run_and_leaves_nothing(
    s1_db: Path, out: Path, identity
) -> None:
    calls = [0]

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        calls[0] += 1
        if calls[0] == 3:  # batches 1 and 2 are being blended and written by now
            raise MemoryError("out of memory in the model")
        return identity.run(batch)

    from sarmae_core.inference import CallableBackend

    failing = CallableBackend(run, identity.info, name="identity")
    with pytest.raises(MemoryError, match="out of memory in the model"):
        predict(s1_db, failing, out / "w.gpkg", products=("class", "vector"), batch_size=1)
    assert calls[0] in (3, 4)  # at most the batch queued behind the failing one ran
    assert list(out.iterdir()) == []
    assert _model_threads() == []


def test_sieve_removes_specks_and_fills_holes_each_in_one_direction() -> None:
    from sarmae_core.inference.io import raster_io
    from sarmae_core.inference.products.sieve import sieve_window

    fileio = raster_io.get()
    m = np.zeros((40, 40), np.uint8)
    m[2:4, 2:4] = 1  # a speck of water, 4 px
    m[10:30, 10:30] = 1
    m[15:17, 15:17] = 0  # a hole of 4 px in the lake
    removed = sieve_window(fileio, m, remove_px=5, fill_px=0)
    assert removed[2:4, 2:4].sum() == 0 and removed[15:17, 15:17].sum() == 0  # hole kept
    assert removed[10:30, 10:30].sum() == 400 - 4
    filled = sieve_window(fileio, m, remove_px=0, fill_px=5)
    assert filled[2:4, 2:4].sum() == 4 and filled[15:17, 15:17].sum() == 4  # speck kept
    both = sieve_window(fileio, m, remove_px=5, fill_px=5)
    assert both.sum() == 400 and both[2:4, 2:4].sum() == 0


def _traced(fileio, classes: np.ndarray, strip_rows: int, chunk: int, remove=0, fill=0):
    """Polygons of ``classes`` traced by a StripTracer fed ``chunk`` rows at a time, as shapely
    polygons sorted by value, area and position."""
    import shapely

    from sarmae_core.inference.products.strips import StripTracer

    out: list = []
    h, w = classes.shape
    tracer = StripTracer(fileio, w, h, lambda p, v: out.append((p, v)), lambda: None, remove,
                         fill, strip_rows=strip_rows)  # fmt: skip
    for row in range(0, h, chunk):
        tracer(row, classes[row : row + chunk])
    tracer.finish()
    shapes = [(v, shapely.Polygon(p[0], p[1:])) for p, v in out]
    return sorted(shapes, key=lambda s: (s[0], s[1].area, s[1].centroid.x, s[1].centroid.y))


def _same_polygons(a: list, b: list) -> None:
    """The same polygons, valid, and vertex for vertex (up to where a ring starts and which way
    it runs): a join that left extra vertices where the seams crossed a region's sides, as a
    GEOS union does, fails here."""
    assert len(a) == len(b)
    for (va, pa), (vb, pb) in zip(a, b, strict=True):
        assert va == vb and pa.is_valid and pb.is_valid and pa.equals(pb)
        assert _ring_vertices(pa.exterior) == _ring_vertices(pb.exterior)
        assert sorted(map(_ring_vertices, pa.interiors)) == sorted(
            map(_ring_vertices, pb.interiors)
        )


def _ring_vertices(ring) -> tuple:
    """A ring's vertices from its lowest-leftmost one, in positive-area order."""
    xy = np.asarray(ring.coords)[:-1]
    if 0.5 * (xy[:, 0] @ np.roll(xy[:, 1], -1) - np.roll(xy[:, 0], -1) @ xy[:, 1]) < 0:
        xy = xy[::-1]
    first = np.lexsort((xy[:, 0], xy[:, 1]))[0]
    return tuple(map(tuple, np.roll(xy, -first, axis=0).tolist()))


@pytest.mark.parametrize("backend", ["gdal", "rasterio"])
def test_strips_traced_and_joined_at_their_seams_give_the_whole_raster_polygons(
    backend: str,
) -> None:
    """Real dark speckle (thousands of regions, many across the seams of 32-row strips fed in
    chunks of 50 rows) and the hard cases drawn by hand: a ring whose hole closes three strips
    further down, regions that meet a seam at one corner only (not 4-connected: two regions),
    and two classes side by side across a seam (two regions)."""
    from sarmae_core.inference.io import raster_io

    fileio = raster_io.get(backend)
    x = s1_db()
    classes = ((x < -14) & (x > -99)).astype(np.uint8)
    classes[x < -20] = 2
    whole = _traced(fileio, classes, classes.shape[0], classes.shape[0])
    strips = _traced(fileio, classes, 32, 50)
    assert len(whole) > 1000
    _same_polygons(strips, whole)
    drawn = np.zeros((140, 60), np.uint8)
    drawn[10:120, 5:45] = 1
    drawn[20:110, 15:35] = 0  # a ring: its hole spans four 32-row strips
    drawn[31, 50] = drawn[32, 51] = 1  # corner to corner across the seam at 32
    drawn[60:70, 50:55] = 1
    drawn[64:70, 55:58] = 2  # another class beside it, across the seam at 64
    ring = [p for v, p in _traced(fileio, drawn, 32, 7) if p.area == 40 * 110 - 20 * 90]
    assert len(ring) == 1 and len(ring[0].interiors) == 1
    _same_polygons(_traced(fileio, drawn, 32, 7), _traced(fileio, drawn, 140, 140))
    assert len(_traced(fileio, drawn, 32, 7)) == 5


def test_a_region_too_large_to_hold_is_written_in_parts_cut_at_strip_edges() -> None:
    """Memory stays bounded on a sea of speckle holes: past ``max_vertices`` its pieces go out
    as traced, cut along the strip edges; the parts together are the region."""
    import shapely

    from sarmae_core.inference.io import raster_io
    from sarmae_core.inference.products.strips import StripTracer

    fileio = raster_io.get()
    sea = np.ones((200, 80), np.uint8)
    sea[5:195:4, 5:75:4] = 0  # 48 x 18 pinholes: one region with 864 holes
    parts: list = []
    tracer = StripTracer(fileio, 80, 200, lambda p, v: parts.append(p), lambda: None,
                         strip_rows=32, max_vertices=2000)  # fmt: skip
    for row in range(0, 200, 50):
        tracer(row, sea[row : row + 50])
    tracer.finish()
    shapes = [shapely.Polygon(p[0], p[1:]) for p in parts]
    assert tracer.parts_cut == len(parts) >= 3
    for shape in shapes:  # each part ends on a strip edge (a multiple of 32 rows) or the map's
        assert shape.bounds[3] % 32 == 0 or shape.bounds[3] == 200
    joined = shapely.union_all(shapes)
    assert joined.area == sea.sum() and len(joined.interiors) == 48 * 18


def test_sieved_strips_equal_the_sieved_whole_raster() -> None:
    """Each strip is sieved with enough context rows: the polygons are those of the whole
    raster sieved at once."""
    from sarmae_core.inference.io import raster_io
    from sarmae_core.inference.products.sieve import sieve_window

    fileio = raster_io.get()
    x = s1_db()
    fragmented = ((x < -14) & (x > -99)).astype(np.uint8)  # dark speckle: thousands of specks
    for remove, fill in [(12, 0), (0, 12), (30, 7)]:
        whole = sieve_window(fileio, fragmented, remove, fill)
        assert (whole != fragmented).sum() > 100  # it does sieve
        expected = _traced(fileio, whole, whole.shape[0], whole.shape[0])
        _same_polygons(_traced(fileio, fragmented, 32, 50, remove, fill), expected)


@pytest.mark.parametrize("backend", ["gdal", "rasterio"])
def test_seam_join_gives_the_holes_and_pinches_a_whole_raster_trace_gives(backend: str) -> None:
    """Pieces of one region traced in two strips (seam at row 8), joined by cancelling their
    shared seam edges. An arch above shut by a bar below closes a new hole. Shut instead by two
    pieces of the lower strip that touch at one corner only (a pinch off the seam), the hole
    touches the shell at that corner: two rings, not one ring that touches itself. Pieces that
    share no seam edge are refused."""
    import shapely

    from sarmae_core.inference.io import raster_io
    from sarmae_core.inference.products.seams import join_polygons

    fileio = raster_io.get(backend)
    arch = np.zeros((16, 16), np.uint8)
    arch[2:4, 2:10] = arch[2:8, 2:4] = arch[2:8, 8:10] = 1
    shut = arch.copy()
    shut[8:11, 2:10] = 1
    pinched = arch.copy()
    pinched[8:11, 2:4] = pinched[10, 4:6] = 1  # under the left pillar, a foot to the right
    pinched[8:10, 8:10] = pinched[9, 6:8] = 1  # under the right one, a foot to the left...
    # ...the feet touch at the corner x 6, y 10 only: two pieces of the lower strip
    for m, lower in [(shut, 1), (pinched, 2)]:
        pieces = [p for p, _ in fileio.trace(m[:8], 0)] + [p for p, _ in fileio.trace(m[8:], 8)]
        assert len(pieces) == 1 + lower
        joined = join_polygons(pieces, [8])
        (whole,) = [p for p, _ in fileio.trace(m, 0)]
        shape = shapely.Polygon(joined[0], joined[1:])
        expected = shapely.Polygon(whole[0], whole[1:])
        assert shape.is_valid and shape.equals(expected) and shape.area == m.sum()
        assert len(shape.interiors) == 1
        assert _ring_vertices(shape.exterior) == _ring_vertices(expected.exterior)
        assert _ring_vertices(shape.interiors[0]) == _ring_vertices(expected.interiors[0])
    assert (6.0, 10.0) in shape.exterior.coords and (6.0, 10.0) in shape.interiors[0].coords
    # pieces with no seam edge in common: not one region along that seam
    apart = np.zeros((16, 16), np.uint8)
    apart[2:8, 2:4] = apart[8:12, 6:9] = 1
    far = [p for p, _ in fileio.trace(apart[:8], 0)] + [p for p, _ in fileio.trace(apart[8:], 8)]
    assert join_polygons(far, [8]) is None
    assert join_polygons(pieces, [5]) is None  # a seam that is not where the pieces meet


@pytest.mark.parametrize("backend", ["gdal", "rasterio"])
def test_strips_of_any_height_give_the_whole_raster_polygons_on_random_maps(backend: str) -> None:
    """Random maps of one and two classes at many densities (pinches, pinholes and regions
    winding through many strips), traced in strips of 1 to 11 rows fed in chunks of any size:
    the polygons are the whole raster's, vertex for vertex, every time."""
    from sarmae_core.inference.io import raster_io

    fileio = raster_io.get(backend)
    rng = np.random.default_rng(7)
    for _ in range(40):
        h, w = rng.integers(5, 50, size=2)
        m = (rng.random((h, w)) < rng.uniform(0.2, 0.8)).astype(np.uint8)
        if rng.random() < 0.5:  # a second class among the first
            m[(m > 0) & (rng.random((h, w)) < 0.4)] = 2
        whole = _traced(fileio, m, h, h)
        _same_polygons(_traced(fileio, m, int(rng.integers(1, 12)), int(rng.integers(1, 20))),
                       whole)  # fmt: skip


def test_pieces_the_seam_join_refuses_are_joined_by_overlay() -> None:
    """The tracer's fallback: pieces that do not meet along a seam of the strips (which a
    tracer's union-find never hands over, but a join must not lose) still come out whole."""
    import shapely

    from sarmae_core.inference.io import raster_io
    from sarmae_core.inference.products.strips import StripTracer

    fileio = raster_io.get()

    def join(pieces, strip_rows):
        tracer = StripTracer(fileio, 16, 16, lambda p, v: None, lambda: None,
                             strip_rows=strip_rows)  # fmt: skip
        return tracer.join(pieces)

    m = np.zeros((16, 16), np.uint8)
    m[2:8, 2:4] = m[8:12, 2:9] = 1  # meet along the seam at row 8
    pieces = [p for p, _ in fileio.trace(m[:8], 0)] + [p for p, _ in fileio.trace(m[8:], 8)]
    exact = join(pieces, strip_rows=8)
    overlay = join(pieces, strip_rows=5)  # seams at 5, 10: the pieces meet on none
    assert len(exact) == len(overlay) == 1
    a = shapely.Polygon(exact[0][0], exact[0][1:])
    b = shapely.Polygon(overlay[0][0], overlay[0][1:])
    assert a.equals(b) and a.area == m.sum() and len(a.exterior.coords) == 7


def test_strip_tracer_refuses_rows_out_of_order() -> None:
    from sarmae_core.inference.io import raster_io
    from sarmae_core.inference.products.strips import StripTracer

    tracer = StripTracer(raster_io.get(), 10, 20, lambda p, v: None, lambda: None)
    tracer(0, np.ones((5, 10), np.uint8))
    with pytest.raises(ValueError, match="expected row 5, got 10"):
        tracer(10, np.ones((5, 10), np.uint8))
    with pytest.raises(ValueError, match="5 of 20 rows came"):
        tracer.finish()


@pytest.mark.parametrize("backend", ["gdal", "rasterio"])
def test_a_strip_without_any_region_is_traced(backend: str) -> None:
    """Strips of background only (dry land, a scene's nodata border) between and above the
    water: nothing to carry across their seams, and the polygons are the whole raster's."""
    from sarmae_core.inference.io import raster_io

    fileio = raster_io.get(backend)
    m = np.zeros((100, 50), np.uint8)
    m[40:44, 10:20] = 1  # water between two empty 16-row strips
    m[70:90, 5:45] = 2
    whole = _traced(fileio, m, 100, 100)
    assert len(whole) == 2
    _same_polygons(_traced(fileio, m, 16, 8), whole)


def test_a_wide_scene_with_a_dry_band_is_mapped_to_polygons(tmp_path: Path, out: Path) -> None:
    """A scene 63,000 px wide is traced in strips of 64 rows; its first 70 rows hold no water
    (dry land, as on a real scene's dry or nodata band). Such a strip crashed the tracer with
    an IndexError; now every pond below it comes out whole, with its area."""
    from sarmae_core.inference import CallableBackend

    width, height = 63_000, 130
    x = np.full((height, width), -6.0, np.float32)  # bright land
    ponds = [(80, 10_000), (90, 30_000), (100, 62_900)]  # (row, column) of 20 x 20 px ponds
    for r, c in ponds:
        x[r : r + 20, c : c + 20] = -22.0
    src = write_raster(tmp_path / "wide_db.tif", x, compress="deflate", tiled=True,
                       blockxsize=256, blockysize=256)  # fmt: skip

    def dark_is_water(batch: np.ndarray) -> dict[str, np.ndarray]:
        water = (batch < -15).astype(np.float32)
        return {"probabilities": np.concatenate([1 - water, water], axis=1)}

    model = CallableBackend(dark_is_water, seg_info(), name="dark-is-water")
    res = predict(src, model, out / "w.gpkg", units="db")
    feats = features(res.files["vector"])
    assert len(feats) == len(ponds)
    for f in feats:  # 20 x 20 px of the fixture's 20 m, measured on the ground (UTM scale)
        assert f["class_name"] == "water"
        assert f["area_m2"] == pytest.approx(400 * 20.0 * 20.0, rel=0.03)
    # the polygons hold exactly the water of the class map
    total = sum(f["area_m2"] for f in feats)
    assert total == pytest.approx(res.summary.water_area_km2 * 1e6, rel=1e-6)
    # the polygon stage's time by step (benchmarks/scene.py prints them) adds up to its time
    timings = res.summary.timings
    steps = [timings[f"vectorise_{k}"] for k in ("sieve", "trace", "join", "write", "other")]
    assert min(steps) >= 0 and timings["vectorise_trace"] > 0 and timings["vectorise_write"] > 0
    assert sum(steps) == pytest.approx(timings["vectorise"])
