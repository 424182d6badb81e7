"""What a :func:`~sarmae_core.inference.predict` run returns: files, figures and notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class PredictionSummary:
    """Figures of a run.

    Attributes:
        seconds: wall time of the whole call.
        model_seconds: time spent inside the backend (in a worker thread, a batch ahead of
            the rest, so it overlaps reading, blending and writing).
        pixels_processed: valid input pixels that received a prediction.
        megapixels_per_second: ``pixels_processed`` per wall second / 1e6.
        tiles, tiles_run: tiles in the grid, and those run (the rest held no valid pixel).
        class_area_km2: ground area of each class (segmentation; empty without a CRS).
        water_area_km2: area of the ``water`` class (segmentation), else None.
        observed_water_km2: a flood run with a one-date (water) model and reference water:
            the water it mapped on the after date, before the reference water is taken out.
        vector_area_km2: area of the written polygons (after filtering), else None.
        ship_count: detections written (detection), else None.
        timings: seconds spent on ``setup`` (loading the model, checking the raster),
            ``read`` (with any resampling to the model's grid), in the ``model``, ``wait``
            (the sweep idle until the model's next batch), ``stitch`` (blending, with
            ``regrid``, resampling back to the input's grid, and ``write``, classifying and
            writing blocks), ``finish`` (overviews, COG) and ``vectorise`` (by step in
            ``vectorise_sieve``, ``_trace``, ``_join``, ``_write`` and ``_other``). The model
            overlaps the other steps, so they add up to more than the wall time.
    """

    seconds: float
    model_seconds: float
    pixels_processed: int
    megapixels_per_second: float
    tiles: int
    tiles_run: int
    class_area_km2: dict[str, float] = field(default_factory=dict)
    water_area_km2: float | None = None

    @property
    def flood_area_km2(self) -> float | None:
        """Area of the ``flood`` class (a flood run), else None."""
        return self.class_area_km2.get("flood")

    @property
    def reference_water_km2(self) -> float | None:
        """A flood run: area of the user's reference (permanent) water, else None."""
        return self.class_area_km2.get("reference water")

    @property
    def excluded_km2(self) -> float | None:
        """A flood run: area excluded (HAND above the threshold), else None."""
        return self.class_area_km2.get("excluded")

    observed_water_km2: float | None = None
    vector_area_km2: float | None = None
    ship_count: int | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class PredictionResult:
    """What a :func:`predict` run wrote and measured.

    Attributes:
        files: final path of each product (``class``, ``probability``, ``vector``).
        task: ``segmentation`` or ``detection``.
        model: the model as given (name or path).
        backend: backend that ran (``onnxruntime``, ``torch``, ...), and ``providers`` where.
        units: units of the input as read; ``crs``: CRS of the outputs (None: pixel space).
        summary: figures of the run.
        notes: every assumption and adjustment the run made, in order.
        io_backend: the library that read and wrote the files (``gdal`` or ``rasterio``).
    """

    files: dict[str, Path]
    task: str
    model: str
    backend: str
    providers: list[str]
    units: str
    crs: str | None
    summary: PredictionSummary
    notes: list[str]
    io_backend: str = ""

    def __str__(self) -> str:
        s = self.summary
        lines = [f"{self.task} with {self.model} ({self.backend} on {self.providers[0]})"]
        lines += [f"  {k}: {v}" for k, v in self.files.items()]
        if s.water_area_km2 is not None:
            lines.append(f"  water area: {s.water_area_km2:.3f} km2")
        for label, km2 in (("observed water", s.observed_water_km2),
                           ("flood area", s.flood_area_km2),
                           ("reference water", s.reference_water_km2),
                           ("excluded", s.excluded_km2)):  # fmt: skip
            if km2 is not None:
                lines.append(f"  {label}: {km2:.3f} km2")
        if s.ship_count is not None:
            lines.append(f"  ships: {s.ship_count}")
        lines.append(
            f"  {s.pixels_processed / 1e6:.2f} Mpx in {s.seconds:.1f} s "
            f"({s.megapixels_per_second:.2f} Mpx/s, model {s.model_seconds:.1f} s)"
        )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
