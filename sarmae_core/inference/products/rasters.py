"""What a segmentation run writes: which files, under which names, and the streaming sink.

Products: ``class`` (uint8 class map, nodata 255, with a colour table), ``probability``
(float32, one band per foreground class, the input's nodata), ``likelihood`` (the foreground
probability in percent, uint8 0-100, nodata 255, as Copernicus GFM delivers flood likelihood),
``exclusion`` (flood runs: uint8, 1 excluded by HAND, 2 no data, 3 radar shadow or layover,
0 mapped), ``water`` (flood runs: the water observed on the after date, uint8 1 water, 0 not,
255 no data) and ``vector``
(polygons in a GeoPackage for segmentation, boxes for detection). The sink receives finished
row chunks from the blender, turns them into classes, writes every raster product, counts
class areas and hands the foreground to the polygon product.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ...errors import ConfigError
from ..geo.georef import Crs, Transform
from ..io.raster_io import RasterIO
from ..io.writers import GeoTiffWriter, OutputSet
from .change import (
    EXCLUDED,
    EXCLUDED_GEOMETRY,
    EXCLUDED_HAND,
    FLOOD,
    FLOOD_CLASSES,
    NO_DATA,
    ChangeLayers,
    apply_change,
    likelihood,
)
from .vectorize import PolygonProduct

PRODUCTS = ("class", "probability", "likelihood", "exclusion", "water", "vector")
#: Raster products with the file-name suffix they get beside ``<stem>.tif``.
_SUFFIXED = ("probability", "likelihood", "exclusion", "water")
CLASS_NODATA = 255
#: Colours of class maps: background transparent, then water blue and distinct hues.
_PALETTE = [(0, 0, 0, 0), (0, 112, 255, 255), (230, 25, 75, 255), (60, 180, 75, 255),
            (255, 225, 25, 255), (145, 30, 180, 255), (70, 240, 240, 255)]  # fmt: skip
#: Colours of a flood map with the user's layers (classes of ``change.FLOOD_CLASSES``): flood
#: bright blue, reference water dark navy (it is water, but not news), excluded grey.
_FLOOD_PALETTE = [(0, 0, 0, 0), (0, 112, 255, 255), (0, 35, 110, 255), (150, 150, 150, 170)]


def plan_outputs(
    output: str | Path | Mapping[str, str | Path], task: str, products: Sequence[str] | None
) -> dict[str, Path]:
    """Final path of each product.

    Without ``products``, the suffix of ``output`` picks one: ``.tif`` a class map, ``.gpkg``
    polygons (segmentation) or boxes (detection). With ``products``, files are named after
    ``output`` without its suffix: ``<stem>.tif`` (class), ``<stem>_probability.tif`` (and
    ``_likelihood``, ``_exclusion``, ``_water``), ``<stem>.gpkg`` (vector). A mapping
    ``{product: path}`` names each file itself.

    Raises:
        ConfigError: an unknown product or suffix, or raster products for a detection model.
    """
    if isinstance(output, Mapping):
        return _explicit_paths(output, task, products)
    out = Path(output)
    suffix = out.suffix.lower()
    if products is None:
        if suffix in (".tif", ".tiff"):
            products = ("class",)
        elif suffix == ".gpkg":
            products = ("vector",)
        else:
            raise ConfigError(
                f"cannot tell what to write to {out.name!r}: name it .tif (class raster) or "
                ".gpkg (polygons or boxes), or pass products=('class', 'probability', 'vector')"
            )
    products = tuple(dict.fromkeys(products))
    unknown = [p for p in products if p not in PRODUCTS]
    if unknown or not products:
        raise ConfigError(f"unknown products {unknown}; choose from {', '.join(PRODUCTS)}")
    if task == "detection" and products != ("vector",):
        raise ConfigError(
            "a detection model writes boxes only: use an output ending in .gpkg "
            "(products=('vector',))"
        )
    stem = out.with_suffix("") if suffix in (".tif", ".tiff", ".gpkg") else out
    names = {
        "class": out if suffix in (".tif", ".tiff") else stem.with_suffix(".tif"),
        **{p: stem.with_name(f"{stem.name}_{p}.tif") for p in _SUFFIXED},
        "vector": stem.with_suffix(".gpkg"),
    }
    if len(products) == 1 and products[0] in _SUFFIXED and suffix in (".tif", ".tiff"):
        names[products[0]] = out
    return {p: names[p] for p in products}


def _explicit_paths(
    paths: Mapping[str, str | Path], task: str, products: Sequence[str] | None
) -> dict[str, Path]:
    """``{product: path}`` as given, checked for known products and fitting suffixes."""
    if products is not None and set(products) != set(paths):
        raise ConfigError("give either products or a {product: path} output, not both")
    unknown = [p for p in paths if p not in PRODUCTS]
    if unknown or not paths:
        raise ConfigError(f"unknown products {unknown}; choose from {', '.join(PRODUCTS)}")
    if task == "detection" and set(paths) != {"vector"}:
        raise ConfigError("a detection model writes boxes only (a .gpkg 'vector' output)")
    wanted = {p: (".tif", ".tiff") for p in PRODUCTS if p != "vector"}
    wanted["vector"] = (".gpkg",)
    out = {p: Path(v) for p, v in paths.items()}
    for product, path in out.items():
        if path.suffix.lower() not in wanted[product]:
            raise ConfigError(
                f"the {product} output {path.name!r} must end in {' or '.join(wanted[product])}"
            )
    if len(set(out.values())) != len(out):
        raise ConfigError("two outputs share one file name")
    return out


def kept_channels(num_classes: int) -> list[int]:
    """Class channels worth blending: the foreground alone for a two-class model."""
    return [1] if num_classes == 2 else list(range(num_classes))


def classify(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Class index per pixel from the kept probabilities [K', ...] (:func:`kept_channels`).

    One or two classes: the foreground probability (last channel) against ``threshold`` (the
    model's ``seg_threshold``); more: the most probable class.
    """
    if probs.shape[0] == 1:
        return (probs[0] >= threshold).astype(np.uint8)
    return np.argmax(probs, axis=0).astype(np.uint8)


class SegmentationSink:
    """Writes each finished chunk of blended probabilities to the requested products.

    Args:
        fileio: the IO backend that writes the rasters.
        outputs: the run's output set (temporary paths come from it).
        products: products to write.
        class_names: names by class index.
        threshold: foreground threshold for one- or two-channel models.
        crs, transform, width, height: the output grid.
        nodata: the input's nodata, for the probability raster (NaN if it lies in [0, 1]).
        row_areas: ground area in m2 of one pixel of each row (None without a CRS).
        keep: class index of each channel the sink receives (:func:`kept_channels`).
        change: a flood run's layers (reference water, HAND, DEM, observed water;
            :class:`.change.ChangeLayers`): the model's foreground becomes the classes of
            :data:`.change.FLOOD_CLASSES`.
        polygons: the polygon product, fed the foreground classes row by row (background,
            no data and, in a flood map, reference water and exclusions are 0: not traced).
    """

    def __init__(
        self,
        fileio: RasterIO,
        outputs: OutputSet,
        products: Sequence[str],
        class_names: Sequence[str],
        threshold: float,
        crs: Crs | None,
        transform: Transform,
        width: int,
        height: int,
        nodata: float,
        row_areas: np.ndarray | None,
        keep: Sequence[int],
        change: ChangeLayers | None = None,
        polygons: PolygonProduct | None = None,
    ) -> None:
        self.change = change
        if change is not None and len(class_names) != 2:
            raise ConfigError("a flood map needs a two-class (water or flood) model")
        self.class_names = list(FLOOD_CLASSES if change is not None else class_names)
        palette = _FLOOD_PALETTE if change is not None else _PALETTE
        #: flood runs: ground area of the water observed on the after date, m2
        self.observed_area_m2 = 0.0
        self.keep = list(keep)
        self.threshold = threshold
        # The input's nodata, unless it is a possible probability (0 in Sentinel-1 GRD files).
        self.nodata = nodata if not 0.0 <= nodata <= 1.0 else float("nan")
        self.row_areas = row_areas
        k = max(2, len(self.class_names))
        self.class_pixels = np.zeros(k, dtype=np.int64)
        self.class_area_m2 = np.zeros(k, dtype=np.float64)
        self.valid_pixels = 0
        self.write_s = 0.0
        self.writers: dict[str, GeoTiffWriter] = {}
        grid = dict(width=width, height=height, crs=crs, transform=transform)
        if "class" in products:
            self.writers["class"] = GeoTiffWriter(
                fileio, outputs.temp("class"), count=1, dtype="uint8", nodata=CLASS_NODATA,
                descriptions=["class"],
                colormap={i: palette[i % len(palette)] for i in range(len(self.class_names))},
                tags={"class_names": json.dumps(self.class_names)}, **grid,
            )  # fmt: skip
        if "probability" in products:
            # One band per foreground class (the only class of a one-channel model).
            self._prob_bands = [i for i, c in enumerate(self.keep) if c >= 1] or [0]
            names = [f"probability of {class_names[self.keep[i]]}" for i in self._prob_bands]
            self.writers["probability"] = GeoTiffWriter(
                fileio, outputs.temp("probability"), count=len(names), dtype="float32",
                nodata=self.nodata, descriptions=names, overview_resampling="average", **grid,
            )  # fmt: skip
        if "likelihood" in products:
            if len(self.keep) != 1:
                raise ConfigError(
                    "the likelihood raster is for two-class (water, flood) models: use the "
                    "probability raster for a model of several classes"
                )
            name = self.class_names[1]
            self.writers["likelihood"] = GeoTiffWriter(
                fileio, outputs.temp("likelihood"), count=1, dtype="uint8", nodata=CLASS_NODATA,
                descriptions=[f"likelihood of {name}, %"], overview_resampling="average", **grid,
            )  # fmt: skip
        # products of flood runs only, and what to use instead
        for product, name, instead in (
            ("water", "observed water", "a water run's class raster is its water"),
            ("exclusion", "exclusion", "give HAND (hand=...) for exclusions beyond no data"),
        ):
            if product in products and change is None:
                raise ConfigError(
                    f"the {name} raster belongs to flood runs (job='flood'); {instead}"
                )
        if "water" in products:
            self.writers["water"] = GeoTiffWriter(
                fileio, outputs.temp("water"), count=1, dtype="uint8", nodata=CLASS_NODATA,
                descriptions=["water observed on the after date"],
                colormap={0: (0, 0, 0, 0), 1: (0, 112, 255, 255)}, **grid,
            )  # fmt: skip
        if "exclusion" in products:
            self.writers["exclusion"] = GeoTiffWriter(
                fileio, outputs.temp("exclusion"), count=1, dtype="uint8", nodata=None,
                descriptions=["exclusion: 1 HAND above threshold, 2 no data, 3 radar shadow or "
                              "layover, 0 mapped"],
                colormap={0: (0, 0, 0, 0), 1: (150, 150, 150, 170), 2: (60, 60, 60, 200),
                          3: (120, 60, 160, 200)},
                **grid,
            )  # fmt: skip
        self.polygons = polygons
        self.mask_path: Path | None = None
        if "quicklook" in products and "class" not in products:
            # the quicklook draws the foreground the polygons are traced from
            self.mask_path = outputs.scratch("foreground.tif")
            self.writers["mask"] = GeoTiffWriter(
                fileio, self.mask_path, count=1, dtype="uint8", nodata=0, **grid
            )

    def __call__(self, row: int, probs: np.ndarray, valid: np.ndarray) -> None:
        t = time.perf_counter()
        classes = classify(probs, self.threshold)
        classes[~valid] = CLASS_NODATA
        layers = None
        if self.change is not None:
            layers = self.change.read(row, probs.shape[1])
            # water on the after date: what a one-date model maps, or the water model's
            # separate map beside a two-date model (ChangeLayers.observed)
            observed = layers.observed if layers.observed is not None else classes == 1
            observed = observed & valid
            if self.row_areas is not None:
                rows = self.row_areas[row : row + probs.shape[1]]
                self.observed_area_m2 += float(observed.sum(axis=1) @ rows)
            if "water" in self.writers:
                code = np.where(valid, observed, CLASS_NODATA).astype(np.uint8)
                self.writers["water"].write(row, code[None])
            apply_change(classes, layers.reference, layers.excluded, valid)
        n = valid.sum()
        self.valid_pixels += int(n)
        counts = np.stack([(classes == c).sum(axis=1) for c in range(len(self.class_pixels))])
        self.class_pixels += counts.sum(axis=1)
        if self.row_areas is not None:
            self.class_area_m2 += counts @ self.row_areas[row : row + probs.shape[1]]
        if "class" in self.writers:
            self.writers["class"].write(row, classes[None])
        if "probability" in self.writers:
            p = probs[self._prob_bands]  # a copy: the class map above used the raw values
            p[:, ~valid] = self.nodata
            self.writers["probability"].write(row, p)
        if "likelihood" in self.writers:
            percent = likelihood(probs[-1], classes, CLASS_NODATA)
            self.writers["likelihood"].write(row, percent[None])
        if "exclusion" in self.writers:
            code = np.where(valid, 0, NO_DATA).astype(np.uint8)
            if layers is not None:
                out = layers.excluded & valid & (classes == EXCLUDED)
                code[out] = EXCLUDED_HAND
                code[out & layers.geometry] = EXCLUDED_GEOMETRY
            self.writers["exclusion"].write(row, code[None])
        fg = None
        if "mask" in self.writers or self.polygons is not None:
            if self.change is not None:
                # a flood map traces flood only: reference water and exclusions are not events
                fg = np.where(classes == FLOOD, classes, 0).astype(np.uint8)
            else:
                fg = np.where(valid & (classes != CLASS_NODATA), classes, 0).astype(np.uint8)
        if "mask" in self.writers:
            self.writers["mask"].write(row, fg[None])
        self.write_s += time.perf_counter() - t
        if self.polygons is not None:  # timed by the polygon product itself
            self.polygons(row, fg)

    def finish(
        self, outputs: OutputSet, cog: bool, check_cancel: Callable[[], None] | None = None
    ) -> None:
        """Close every raster; add overviews to products (as COGs when asked).

        ``check_cancel`` is checked while overviews and COG copies are made (seconds each on
        a large output) and raises :class:`~sarmae_core.errors.CancelledError` to stop.
        """
        check = check_cancel or (lambda: None)
        if self.change is not None:
            self.change.close()
        if "mask" in self.writers:
            self.writers["mask"].close()
        for key in ("class", "probability", "likelihood", "exclusion", "water"):
            if key in self.writers:
                w = self.writers[key]
                w.finish(check)
                if cog:
                    w.to_cog(outputs.temp(key), check)

    def close(self) -> None:
        """Close files after a failure (the output set removes them)."""
        if self.change is not None:
            self.change.close()
        closing = list(self.writers.values())
        if self.polygons is not None:
            closing.append(self.polygons)
        for w in closing:
            try:
                w.close()
            except Exception:  # already failing: keep the original error
                pass
