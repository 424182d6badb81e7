"""Property: whatever small raster and options it gets, ``predict`` returns a result or raises
a ``SarmaeError``, and no file other than its planned outputs changes (issue 12).

Hypothesis draws rasters (data types, nodata, NaN, with and without a CRS, 1..64 px a side)
and option values, in range and out of it. Derandomized with no example database, so every
run tries the same examples: a failure is reproducible, and the run stays short.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sarmae_core.errors import SarmaeError
from sarmae_core.inference import PredictionResult, predict

from .helpers import write_raster

DTYPES = ["uint8", "uint16", "int16", "float32", "float64"]
#: A value of any kind a caller might pass for a number: in range, out of range, non-finite.
VALUES = st.one_of(
    st.floats(0, 1000),  # mostly sensible values, so that many examples run to the end
    st.sampled_from([0.0, 0.5, 1.0, -1.0, math.nan, math.inf, 1e12]),
    st.floats(0, 1000),
)
NUMBERS = st.one_of(st.none(), VALUES)


@st.composite
def rasters(draw: st.DrawFn) -> dict:
    dtype = draw(st.sampled_from(DTYPES))
    height, width = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if dtype.startswith("float"):
        kind = draw(st.sampled_from(["db", "linear"]))
        data = (
            rng.normal(-12, 5, (height, width))
            if kind == "db"
            else rng.gamma(1, 0.05, (height, width))
        )
        data[rng.random((height, width)) < draw(st.sampled_from([0.0, 0.1, 1.0]))] = np.nan
    else:
        info = np.iinfo(dtype)
        data = rng.integers(max(info.min, -3000), min(info.max, 3000) + 1, (height, width))
    nodata = draw(st.sampled_from([None, 0, -99, "nan"]))
    if nodata == "nan" and not dtype.startswith("float"):
        nodata = None
    if nodata == -99 and dtype.startswith("uint"):
        nodata = None
    return dict(
        data=data.astype(dtype),
        nodata=float("nan") if nodata == "nan" else nodata,
        crs=draw(st.sampled_from(["EPSG:32631", None])),
    )


OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "threshold": NUMBERS,
        "min_area_m2": VALUES,
        "simplify_m": VALUES,
        "fill_holes_m2": VALUES,
        "tile": st.sampled_from([None, 16, 32, 64, 0, -16, 30]),
        "overlap": st.sampled_from([None, 0, 8, 60, -1]),
        "units": st.sampled_from([None, "db", "amplitude", "intensity", "sigma"]),
        "aoi": st.sampled_from(
            [
                None,
                (620000.0, 4826000.0, 621000.0, 4827000.0),
                (0.0, 0.0, 1.0, 1.0),
                (math.nan,) * 4,
            ]
        ),
        "products": st.sampled_from([None, ("class",), ("class", "probability", "vector")]),
        "quicklook": st.booleans(),
        "overwrite": st.booleans(),
    },
)


@settings(max_examples=80, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])  # fmt: skip
@given(raster=rasters(), options=OPTIONS)
def test_predict_gives_a_result_or_a_sarmae_error(models, raster: dict, options: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scene = write_raster(folder / "scene.tif", raster["data"], nodata=raster["nodata"],
                             crs=raster["crs"])  # fmt: skip
        (folder / "earlier.gpkg").write_bytes(b"an earlier result")
        quicklook = folder / "q.png" if options.pop("quicklook", False) else None
        output = folder / ("w.tif" if options.get("products") is None else "w")
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        try:
            result = predict(scene, models["water"], output, quicklook=quicklook, **options)
        except SarmaeError as exc:
            event(f"refused: {type(exc).__name__}")
            result = None
        except Exception as exc:  # anything else is a bug: show what and with which input
            pytest.fail(f"{type(exc).__name__}: {exc} (options {options})")
        planned = {p.name for p in result.files.values()} if result is not None else set()
        after = {p.name: p.read_bytes() for p in folder.iterdir()}
        assert set(after) == set(before) | planned  # no temporary file left, nothing else new
        for name, data in before.items():
            assert after[name] == data or name in planned  # only planned outputs change
        if result is not None:
            event("result")
            assert isinstance(result, PredictionResult)
