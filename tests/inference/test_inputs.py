"""SAR-aware input: units, complex data, bands, pixel size, area of interest, CRS, GCPs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.enums import Resampling
from rasterio.warp import transform as warp_transform
from rasterio.warp import transform_bounds

from sarmae_core.errors import InputError
from sarmae_core.inference import CallableBackend, InferenceWarning, predict

from .helpers import read, s1_db, seg_info, write_raster

DB = s1_db()
INTENSITY = (10 ** (DB / 10)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(models, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Water probability of the dB scene, which every other encoding must reproduce."""
    d = tmp_path_factory.mktemp("ref")
    src = write_raster(d / "scene_VV_db.tif", DB)
    res = predict(src, models["water"], d / "ref.tif", products=("probability",))
    return read(res.files["probability"])[0]


def _probability(src: Path, model, out: Path, **kwargs) -> np.ndarray:
    res = predict(src, model, out / f"{src.stem}.tif", products=("probability",), **kwargs)
    return read(res.files["probability"])[0]


def _phase(shape: tuple[int, ...]) -> np.ndarray:
    return np.exp(1j * np.random.default_rng(0).uniform(-np.pi, np.pi, shape))


@pytest.mark.parametrize(
    ("data", "description"),
    [
        (DB, "Sigma0_VV_db"),  # SNAP names: dB
        (INTENSITY, "Sigma0_VV"),  # SNAP: calibrated linear intensity
        (np.sqrt(INTENSITY), "Amplitude_VV"),
        ((np.sqrt(INTENSITY) * _phase(DB.shape)).astype(np.complex64), "VV"),  # SLC-like
    ],
    ids=["db", "intensity", "amplitude", "complex"],
)
def test_units_from_metadata_give_the_same_result(
    tmp_path: Path, out: Path, models, reference, data, description
) -> None:
    src = write_raster(tmp_path / "scene.tif", data, descriptions=[description])
    with _no_warnings():
        p = _probability(src, models["water"], out)
    np.testing.assert_allclose(p, reference, atol=1e-5)


def test_explicit_units_and_heuristics(tmp_path: Path, out: Path, models, reference) -> None:
    linear = write_raster(tmp_path / "plain.tif", INTENSITY)
    with pytest.raises(InputError, match="cannot tell the units"):
        predict(linear, models["water"], out / "x.tif", bands=[1])
    p = _probability(linear, models["water"], out, units="intensity", bands=[1])
    np.testing.assert_allclose(p, reference, atol=1e-5)
    db = write_raster(tmp_path / "other.tif", DB)
    with pytest.warns(InferenceWarning, match=r"assumed dB because \d+% of the sampled values"):
        p = _probability(db, models["water"], out, bands=[1])
    np.testing.assert_allclose(p, reference, atol=1e-6)
    with pytest.raises(InputError, match="probably in dB"):
        predict(db, models["water"], out / "y.tif", units="intensity", bands=[1])
    with pytest.raises(InputError, match="unknown units 'furlongs'"):
        predict(db, models["water"], out / "z.tif", units="furlongs", bands=[1])
    assert list(out.iterdir()) == [out / "plain.tif", out / "other.tif"] or True
    assert sorted(p.name for p in out.iterdir()) == ["other.tif", "plain.tif"]


def _identity(polarisations: list[str]) -> CallableBackend:
    names = ["first", *(f"ch{i}" for i in range(1, len(polarisations)))]
    zeros, ones = [0.0] * len(names), [1.0] * len(names)
    info = seg_info(polarisations=polarisations, class_names=names,
                    normalization={"mean": zeros, "std": ones})  # fmt: skip
    return CallableBackend(lambda b: {"probabilities": b.copy()}, info)


def test_bands_are_mapped_by_name(tmp_path: Path, out: Path, models, reference) -> None:
    vh = DB - 6.0
    src = write_raster(tmp_path / "dual_db.tif", np.stack([vh, DB]), descriptions=["VH", "VV"])
    # A VV model picks band 2 by its name.
    np.testing.assert_allclose(_probability(src, models["water"], out), reference, atol=1e-6)
    assert not np.allclose(_probability(src, models["water"], out, bands=["VH"], overwrite=True),
                           reference, atol=1e-3)  # fmt: skip
    # A [VV, VH, VV-VH] model gets its channels in its own order and the derived ratio.
    p = _probability(src, _identity(["VV", "VH", "VV-VH"]), out, overwrite=True)
    with rasterio.open(out / "dual_db.tif") as ds:
        assert ds.descriptions == ("probability of ch1", "probability of ch2")
        got = ds.read()
    np.testing.assert_allclose(got[0], vh, rtol=1e-6)
    np.testing.assert_allclose(got[1], 6.0, rtol=1e-5)
    assert p.shape == DB.shape
    unnamed = write_raster(tmp_path / "two_bands_db.tif", np.stack([DB, vh]))
    with pytest.raises(InputError, match=r"needs bands VV but the raster has \[1: unnamed"):
        predict(unnamed, models["water"], out / "u.tif")


def test_polarisation_from_band_tags(tmp_path: Path, out: Path) -> None:
    src = write_raster(tmp_path / "tagged_db.tif", np.stack([DB - 6.0, DB]))
    with rasterio.open(src, "r+") as ds:
        ds.update_tags(1, POLARISATION="VH")
        ds.update_tags(2, POLARISATION="VV")
    p = _probability(src, _identity(["VV", "VH"]), out)
    np.testing.assert_allclose(p, DB - 6.0, rtol=1e-6)  # band "ch1" is the VH channel


@pytest.mark.parametrize("resolution", [10.0, 40.0])
def test_pixel_size_is_matched_to_the_model(
    tmp_path: Path, out: Path, s1_db: Path, resolution: float
) -> None:
    """The model sees its own resolution; the outputs stay on the input's 20 m grid."""
    from .helpers import make_seg_onnx

    model = make_seg_onnx(tmp_path / "m.onnx", seg_info(resolution_m=resolution))
    with pytest.warns(InferenceWarning, match=rf"trained for \({resolution:g} m pixels"):
        res = predict(s1_db, model, out / "r.tif", products=("class", "probability"))
    classes, profile = read(res.files["class"])
    with rasterio.open(s1_db) as src:
        assert classes.shape == src.shape and profile["transform"] == src.transform
    assert any("resampled on the fly" in n for n in res.notes)
    assert res.summary.water_area_km2 == pytest.approx(5.8, rel=0.15)  # about the 20 m result
    prob, _ = read(res.files["probability"])
    valid = classes != 255
    assert ((prob[valid] >= 0.5) == (classes[valid] == 1)).all()  # one product, two rasters


def test_finer_input_gives_outputs_on_its_own_grid(
    tmp_path: Path, out: Path, s1_db: Path, models
) -> None:
    """A 10 m input (the 20 m scene resampled) to a 20 m model: mask on the 10 m grid, the
    water fraction of the 20 m run."""
    fine = tmp_path / "scene_10m_VV_db.tif"
    with rasterio.open(s1_db) as src:
        data = src.read(
            1, out_shape=(src.height * 2, src.width * 2), resampling=Resampling.bilinear
        )
        t = src.transform
        profile = src.profile | dict(
            width=src.width * 2, height=src.height * 2,
            transform=rasterio.Affine(t.a / 2, t.b, t.c, t.d, t.e / 2, t.f),
        )  # fmt: skip
    profile.pop("blockysize", None)
    with rasterio.open(fine, "w", **profile) as dst:
        dst.write(data, 1)
    coarse = predict(s1_db, models["water"], out / "m20.tif", products=("class", "vector"))
    with pytest.warns(InferenceWarning, match="outputs are resampled back to the input's grid"):
        res = predict(fine, models["water"], out / "m10.tif", products=("class", "vector"))
    classes, profile = read(res.files["class"])
    with rasterio.open(fine) as src:
        assert classes.shape == src.shape
        assert (profile["transform"], profile["crs"]) == (src.transform, src.crs)
    c20, _ = read(coarse.files["class"])
    fraction = (classes == 1).sum() / (classes != 255).sum()
    assert fraction == pytest.approx((c20 == 1).sum() / (c20 != 255).sum(), rel=0.03)
    assert res.summary.water_area_km2 == pytest.approx(coarse.summary.water_area_km2, rel=0.03)
    assert res.summary.vector_area_km2 == pytest.approx(res.summary.water_area_km2, rel=1e-6)


def test_area_of_interest(tmp_path: Path, out: Path, s1_db: Path, models) -> None:
    with rasterio.open(s1_db) as ds:
        crs, left, top = ds.crs, ds.bounds.left, ds.bounds.top
    # A box in the raster's CRS: exactly that window is processed and written.
    box = (left + 400, top - 1600, left + 2000, top - 400)  # 80 x 60 px
    res = predict(s1_db, models["water"], out / "box.tif", aoi=box)
    classes, profile = read(res.files["class"])
    assert classes.shape == (60, 80) and (classes != 255).all()
    assert (profile["transform"].c, profile["transform"].f) == (left + 400, top - 400)
    # The same box in EPSG:4326 is a polygon in UTM: pixels outside it are nodata.
    box4326 = transform_bounds(crs, "EPSG:4326", *box)
    res = predict(s1_db, models["water"], out / "geo.tif", aoi=box4326, aoi_crs="EPSG:4326")
    classes, _ = read(res.files["class"])
    assert 0 < (classes == 255).mean() < 0.2 and classes.shape[0] >= 60
    # Polygons from a vector file (GeoJSON, EPSG:4326): a triangle keeps about half the box.
    lon, lat = warp_transform(crs, "EPSG:4326", [box[0], box[2], box[0]], [box[1], box[1], box[3]])
    ring = [[x, y] for x, y in zip(lon, lat, strict=True)]
    geojson = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
               "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}}]}  # fmt: skip
    path = tmp_path / "area.geojson"
    path.write_text(json.dumps(geojson))
    res = predict(s1_db, models["water"], out / "tri.tif", aoi=path)
    classes, _ = read(res.files["class"])
    assert (classes != 255).mean() == pytest.approx(0.5, abs=0.05)
    with pytest.raises(InputError, match="does not overlap the raster"):
        predict(s1_db, models["water"], out / "none.tif", aoi=(0, 0, 10, 10))


def test_raster_without_crs_runs_in_pixel_space(tmp_path: Path, out: Path, models) -> None:
    src = write_raster(tmp_path / "nocrs_VV_db.tif", DB, crs=None,
                       transform=rasterio.Affine.identity())  # fmt: skip
    with pytest.warns(InferenceWarning, match="no CRS: running in pixel space"):
        res = predict(src, models["water"], out / "n.tif", products=("class", "vector"))
    with rasterio.open(res.files["class"]) as ds:
        assert ds.crs is None and ds.shape == DB.shape
    assert res.crs is None and res.summary.water_area_km2 is None
    assert res.summary.vector_area_km2 is None and res.files["vector"].exists()


def test_sentinel1_grd_measurement_tiff_with_gcps(tmp_path: Path, out: Path, s1_db: Path) -> None:
    """A GRD-like file: uint16 amplitude numbers, GCPs instead of a geotransform, S1 name."""
    from .helpers import make_seg_onnx

    with rasterio.open(s1_db) as ds:
        t, crs = ds.transform, ds.crs
    dn = np.clip(np.sqrt(INTENSITY) * 3000, 1, 65535).astype(np.uint16)
    dn[:, :6] = 0  # GRD borders hold 0
    rows, cols = np.meshgrid(np.linspace(0, 217, 5), np.linspace(0, 268, 5), indexing="ij")
    xs, ys = t.c + cols.ravel() * t.a, t.f + rows.ravel() * t.e
    lon, lat = warp_transform(crs, "EPSG:4326", xs, ys)
    points = zip(rows.ravel(), cols.ravel(), lon, lat, strict=True)
    gcps = [GroundControlPoint(r, c, x, y) for r, c, x, y in points]
    name = "s1a-iw-grd-vv-20150309t173017-20150309t173042-004963-006357-001.tiff"
    path = tmp_path / name
    with rasterio.open(path, "w", driver="GTiff", width=268, height=217, count=1,
                       dtype="uint16", gcps=gcps, crs="EPSG:4326") as ds:  # fmt: skip
        ds.write(dn, 1)
    # The model takes amplitude: the GRD numbers go in as they are (uncalibrated).
    model = make_seg_onnx(tmp_path / "amp.onnx", seg_info(units="amplitude"))
    with pytest.warns(InferenceWarning, match="georeferenced by 25 GCPs"):
        res = predict(path, model, out / "grd.tif", products=("class", "probability"))
    assert res.crs == "EPSG:4326" and res.units == "amplitude"
    assert any("Sentinel-1 GRD file name" in n for n in res.notes)
    classes, _ = read(res.files["class"])
    assert (classes == 255).any() and (classes != 255).mean() > 0.8  # warped edges are nodata
    prob, profile = read(res.files["probability"])
    # GRD nodata is 0, a possible probability: the probability raster uses NaN instead.
    assert np.isnan(profile["nodata"]) and np.isnan(prob[classes == 255]).all()


class _no_warnings:
    """Fails if an InferenceWarning is issued (the file said everything)."""

    def __enter__(self) -> None:
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("error", InferenceWarning)

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


def _scene_at(src_path: Path, dst: Path, factor: float) -> Path:
    """The real 20 m scene resampled by ``factor`` (2: 10 m pixels, 0.5: 40 m)."""
    with rasterio.open(src_path) as src:
        h, w = round(src.height * factor), round(src.width * factor)
        data = src.read(1, out_shape=(h, w), resampling=Resampling.bilinear)
        t = src.transform
        sx, sy = src.width / w, src.height / h
        profile = src.profile | dict(
            width=w, height=h, transform=rasterio.Affine(t.a * sx, t.b, t.c, t.d, t.e * sy, t.f)
        )  # fmt: skip
    profile.pop("blockysize", None)
    with rasterio.open(dst, "w", **profile) as out_ds:
        out_ds.write(data, 1)
    return dst


def test_model_pixel_size_rule() -> None:
    from sarmae_core.inference.scene.source import model_pixel_size, trained_for

    ranged = seg_info(resolution_m=20.0, resolution_range_m=[10.0, 20.0])
    assert model_pixel_size(10.0, 10.0, ranged) is None  # 10 m scenes keep their detail
    assert model_pixel_size(20.0, 20.0, ranged) is None
    assert model_pixel_size(24.0, 24.0, ranged) is None  # within the 25 % tolerance
    assert model_pixel_size(5.0, 5.0, ranged) == pytest.approx((10.0, 10.0))
    assert model_pixel_size(40.0, 40.0, ranged) == pytest.approx((20.0, 20.0))
    x, y = model_pixel_size(4.0, 1.0, ranged)  # keeps the pixel aspect, mean at 10 m
    assert (x / y, (x * y) ** 0.5) == pytest.approx((4.0, 10.0))
    single = seg_info(resolution_m=20.0)
    assert model_pixel_size(10.0, 10.0, single) == (20.0, 20.0)
    assert model_pixel_size(22.0, 22.0, single) is None
    assert model_pixel_size(10.0, 10.0, seg_info(resolution_m=None)) is None
    assert trained_for(ranged) == "10-20 m pixels"
    assert trained_for(single) == "20 m pixels"
    assert trained_for(seg_info(resolution_m=None)) == "any pixel size"


@pytest.mark.parametrize(
    ("factor", "resampled_to"), [(2.0, None), (1.0, None), (4.0, 10.0), (0.5, 20.0)]
)
def test_a_model_with_a_resolution_range_reads_inputs_inside_it_on_their_grid(
    tmp_path: Path, out: Path, s1_db: Path, factor: float, resampled_to: float | None
) -> None:
    """10 m and 20 m scenes run on their own pixels; 5 m and 40 m go to the nearer end."""
    import warnings

    from .helpers import make_seg_onnx

    model = make_seg_onnx(
        tmp_path / "m.onnx", seg_info(resolution_m=20.0, resolution_range_m=[10.0, 20.0])
    )
    scene = s1_db if factor == 1.0 else _scene_at(s1_db, tmp_path / f"s{factor}.tif", factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InferenceWarning)
        res = predict(scene, model, out / "m.tif", products=("class",))
    resampled = [n for n in res.notes if "resampled on the fly" in n]
    classes, profile = read(res.files["class"])
    with rasterio.open(scene) as src:
        assert classes.shape == src.shape and profile["transform"] == src.transform
    if resampled_to is None:
        assert not resampled
    else:
        assert resampled and "10-20 m pixels" in resampled[0]
        import re

        with rasterio.open(scene) as src:
            expect = src.width * src.res[0] / resampled_to
        # ground pixel size (UTM scale factor) differs from the map's by well under 1 %
        width = int(re.search(r"to (\d+) x \d+ px", resampled[0]).group(1))
        assert width == pytest.approx(expect, rel=0.01)
