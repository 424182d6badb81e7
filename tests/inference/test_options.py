"""One options object for every caller of ``predict`` (issue 14): typed, checked once when it
is made, and the same run whether given as keywords or as ``RunOptions``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sarmae_core.errors import ConfigError
from sarmae_core.inference import RunOptions, predict
from sarmae_core.inference.options import NAMES


def classes(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def test_options_are_checked_where_they_are_made():
    opts = RunOptions(bands=["VV"], products=["class"], threshold=0.4)
    assert opts.bands == ("VV",) and opts.products == ("class",)  # frozen and hashable
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.threshold = 0.6  # type: ignore[misc]
    for bad, words in (
        (dict(tile="256"), "tile must be an int"),
        (dict(batch_size=0), "batch_size must be at least 1"),
        (dict(threshold=1.5), "threshold must lie strictly between 0 and 1"),
        (dict(bands="VV"), "bands must be a list"),
        (dict(fill_holes_m2=float("nan")), "fill_holes_m2 must be a finite number"),
        (dict(quicklook="q.jpg"), "must end in .png"),
        (dict(overwrite="yes"), "overwrite must be True or False"),
        (dict(io_backend=3), "io_backend must be a string"),
    ):
        with pytest.raises(ConfigError, match=words):
            RunOptions(**bad)
    with pytest.raises(ConfigError, match=r"unknown option tiles; the options are .*tile"):
        RunOptions.of(tiles=256)
    assert RunOptions.of(opts, threshold=0.6).threshold == 0.6  # keywords on top of an object
    assert RunOptions.of(opts) is opts
    assert opts.changed() == {"bands": ("VV",), "products": ("class",), "threshold": 0.4}
    assert set(opts.as_dict()) == NAMES


def test_keywords_and_an_options_object_run_the_same(s1_db: Path, out: Path, models) -> None:
    a = predict(s1_db, models["water"], out / "a.tif", threshold=0.3, tile=64, overlap=16)
    opts = RunOptions(threshold=0.3, tile=64, overlap=16)
    b = predict(s1_db, models["water"], out / "b.tif", opts)
    other = RunOptions(threshold=0.7, tile=64, overlap=16)
    c = predict(s1_db, models["water"], out / "c.tif", other, threshold=0.3)
    wet = classes(a.files["class"])
    assert 0 < (wet == 1).mean() < 1
    assert np.array_equal(wet, classes(b.files["class"]))
    assert np.array_equal(wet, classes(c.files["class"]))  # the keyword overrides the object
    with pytest.raises(ConfigError, match="unknown option"):
        predict(s1_db, models["water"], out / "d.tif", treshold=0.3)
    assert not (out / "d.tif").exists()
