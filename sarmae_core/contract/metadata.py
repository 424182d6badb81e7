"""Model parameters carried inside ONNX files (``metadata_props``), torch-free.

The keys that Deepness and GeoDeep read are written with their meanings and encodings (every
value JSON, as both tools ``json.loads`` it; resolution in cm/px, tiles_overlap in percent,
class_names as a JSON object); the SAR keys, prefixed
``sarmae_``, say what the input must be so that a client never has to guess units or bands.
The ONNX graph normalises its input itself: the input tensor is in ``sarmae_units``; the
Deepness ``standardization_*`` keys only undo Deepness' own division by 255.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import CheckpointError

#: Our model tasks and the Deepness ``model_type`` each maps to.
TASK_TO_DEEPNESS = {
    "segmentation": "Segmentor",
    "detection": "Detector",
    "classification": "Recognition",
}

#: 2: the Deepness/GeoDeep keys JSON-encoded (``"Segmentor"``), ``tile_size`` and
#: ``seg_small_segment`` added.
METADATA_VERSION = "2"


def default_overlap(tile: int) -> int:
    """Tile overlap when none is given: a quarter of the tile, so that a pixel near one tile's
    edge is also seen well inside a neighbour, whose view the centre-weighted blend (and, for
    boxes, the merge across tiles) prefers."""
    return int(tile) // 4


@dataclass
class ModelInfo:
    """What a client needs to run a sarmae model on a raster.

    Attributes:
        task: ``segmentation``, ``detection`` or ``classification``.
        class_names: class names by output index (segmentation: index 0 is background).
        units: radiometric units the input tensor must be in (``db``, ``intensity``,
            ``amplitude``).
        polarisations: band names in input-channel order, e.g. ``["VV", "VH"]``.
        normalization: ``{"mean": [...], "std": [...]}`` that the graph applies internally.
        looks: equivalent number of looks of the training data.
        resolution_m: pixel size the model was trained at, metres (None if any).
        resolution_range_m: ``[finest, coarsest]`` pixel sizes in metres the model was trained
            across; inputs inside are not resampled (None: ``resolution_m`` only).
        tile_size: input tile side in pixels the model was trained/exported for.
        tile_overlap: overlap between tiles in pixels (recommended default).
        patch_size: ViT patch.
        tile_multiple: tile sides must be multiples of it (0: ``patch_size``; a segmentation
            model whose encoder reads the input pooled by 2 needs twice the patch).
        seg_threshold, det_confidence, det_iou_threshold: default decision thresholds.
        preset: encoder preset name.
        version: sarmae version that wrote the model.
        name: short model name, e.g. ``water``.
        training_data: datasets the model was trained on, with attribution.
        licence: licence of the model weights.
        outputs: output tensor names in order, with their meaning for detection models.
        dates: a two-date (change) model's acquisition per channel, ``before`` or ``after``;
            empty for a single-date model.
    """

    task: str
    class_names: list[str]
    units: str = "db"
    polarisations: list[str] = field(default_factory=lambda: ["VV"])
    normalization: dict[str, list[float]] = field(
        default_factory=lambda: {"mean": [0.0], "std": [1.0]}
    )
    looks: float = 4.4
    resolution_m: float | None = 10.0
    resolution_range_m: list[float] | None = None
    tile_size: int = 256
    tile_overlap: int = 64
    patch_size: int = 16
    tile_multiple: int = 0
    seg_threshold: float = 0.5
    det_confidence: float = 0.3
    det_iou_threshold: float = 0.3
    preset: str = ""
    version: str = ""
    name: str = ""
    training_data: str = ""
    licence: str = ""
    outputs: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.task not in TASK_TO_DEEPNESS:
            raise CheckpointError(
                f"unknown model task {self.task!r}; expected one of {', '.join(TASK_TO_DEEPNESS)}"
            )
        _validate(self)

    @property
    def in_chans(self) -> int:
        return len(self.polarisations)

    @property
    def tile_step(self) -> int:
        """Tile sides must be multiples of this many pixels."""
        return self.tile_multiple or self.patch_size

    @classmethod
    def from_task_model(
        cls,
        model: Any,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
        class_names: list[str] | None = None,
        **descriptive: Any,
    ) -> ModelInfo:
        """What a task model (``sarmae_core.models.heads``) expects, from its config.

        Reads attributes only, so this module stays torch-free. ``descriptive``: ``version``,
        ``name``, ``training_data``, ``licence``. Tiling and the detection NMS IoU default to
        what fine-tuning recorded in the model (``model.inference``: the tile it was trained
        or chosen for, the IoU its metrics were measured with), else the config's
        ``img_size`` (the pretraining window) and a quarter of it.
        """
        cfg = model.config
        data = cfg.data
        recorded = dict(getattr(model, "inference", None) or {})
        if tile_size is None:
            tile_size = recorded.get("tile_size")
            if tile_overlap is None and tile_size is not None:
                tile_overlap = recorded.get("tile_overlap")
        tile = cfg.img_size if tile_size is None else int(tile_size)
        iou = recorded.get("det_iou_threshold")
        if iou is not None:
            descriptive = {"det_iou_threshold": float(iou), **descriptive}
        norm = data.normalization
        return cls(
            task=model.task,
            class_names=list(model.class_names if class_names is None else class_names),
            units=data.units,
            polarisations=list(data.polarisations),
            normalization={"mode": norm.mode, "mean": list(norm.mean), "std": list(norm.std)},
            looks=data.looks,
            resolution_m=data.resolution,
            resolution_range_m=getattr(data, "resolution_range", None),
            tile_size=tile,
            tile_overlap=default_overlap(tile) if tile_overlap is None else tile_overlap,
            patch_size=cfg.patch_size,
            tile_multiple=getattr(model, "tile_multiple", cfg.patch_size),
            preset=cfg.preset,
            outputs=list(model.output_names),
            dates=list(getattr(data, "dates", None) or []),
            **descriptive,
        )

    def to_metadata_props(self) -> dict[str, str]:
        """String key/value pairs for ONNX ``metadata_props``.

        The Deepness/GeoDeep keys are written as their code reads them: Deepness passes every
        value through ``json.loads`` (so ``model_type`` is the JSON string ``"Segmentor"``),
        reads ``tile_size`` (its docs say ``tiles_size``: both are written) and an integer
        ``tiles_overlap`` in percent; GeoDeep reads ``float()``/``int()`` of the numbers, which
        JSON numbers also satisfy. See :func:`deepness_view`.
        """
        n = self.in_chans
        props = {
            "model_type": json.dumps(TASK_TO_DEEPNESS[self.task]),
            "class_names": json.dumps({str(i): name for i, name in enumerate(self.class_names)}),
            "tile_size": json.dumps(self.tile_size),
            "tiles_size": json.dumps(self.tile_size),
            "tiles_overlap": json.dumps(round(100 * self.tile_overlap / self.tile_size)),
            # Deepness divides pixels by 255 before standardising; std 1/255 undoes that, so
            # the raster's own values (dB, ...) reach the graph, which normalises them itself.
            "standardization_mean": json.dumps([0.0] * n),
            "standardization_std": json.dumps([1 / 255] * n),
            "seg_thresh": json.dumps(self.seg_threshold),
            # 0: no morphological clean-up. GeoDeep's default (11) deletes water bodies under
            # ~480 px; small areas are the user's choice here (--min-area), not the model's.
            "seg_small_segment": json.dumps(0),
            "det_conf": json.dumps(self.det_confidence),
            "det_iou_thresh": json.dumps(self.det_iou_threshold),
        }
        res = self.tool_resolution_m()
        if res is not None:  # cm per pixel; absent, not "", when any size goes
            props["resolution"] = json.dumps(round(res * 100, 6))
        props["sarmae_info"] = json.dumps(asdict(self), sort_keys=True)
        props["sarmae_metadata_version"] = METADATA_VERSION
        for key in ("task", "units", "preset", "version", "name", "licence", "training_data"):
            props[f"sarmae_{key}"] = str(getattr(self, key))
        props["sarmae_polarisations"] = ",".join(self.polarisations)
        props["sarmae_looks"] = f"{self.looks:g}"
        props["sarmae_normalization"] = json.dumps(self.normalization)
        return props

    def tool_resolution_m(self) -> float | None:
        """The one pixel size Deepness and GeoDeep resample every layer to (their
        ``resolution``), in metres.

        A segmentation model trained across a range of pixel sizes gets the range's finest
        end: at ``resolution_m`` (the water model's 20 m) those tools would average a 10 m
        Sentinel-1 scene to 20 m and lose the field parcels and narrow rivers the model maps
        at 10 m, as predict no longer does. A detection model keeps ``resolution_m``: bringing
        coarse scenes up to the finest end of a ship model's range (0.5 m) would multiply the
        tiles and add no pixel to a hull.
        """
        if self.task == "segmentation" and self.resolution_range_m:
            return float(self.resolution_range_m[0])
        return self.resolution_m

    @classmethod
    def from_metadata_props(cls, props: dict[str, str], source: str = "model") -> ModelInfo:
        """Parse what :meth:`to_metadata_props` wrote.

        Raises:
            CheckpointError: the file was not written by sarmae (e.g. a Deepness or other
                foreign ONNX model), naming what is missing.
        """
        raw = props.get("sarmae_info")
        if raw is None:
            kind = props.get("model_type", "").strip('"')  # JSON-quoted or bare
            kind = f" (it looks like a {kind} model for Deepness)" if kind else ""
            raise CheckpointError(
                f"{source} is not a sarmae model{kind}: its ONNX metadata has no 'sarmae_info'. "
                "Export models with `sarmae export`, or pick one of the bundled models."
            )
        try:
            data: dict[str, Any] = json.loads(raw)
            if not isinstance(data, dict):
                raise TypeError(f"'sarmae_info' holds {type(data).__name__}, not an object")
            known = {f for f in cls.__dataclass_fields__}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (json.JSONDecodeError, TypeError) as exc:
            raise CheckpointError(f"{source} has damaged sarmae metadata: {exc}") from exc
        except CheckpointError as exc:
            raise CheckpointError(
                f"{source} has invalid sarmae metadata: {exc}; export the model again with "
                "`sarmae export`"
            ) from exc


def deepness_view(props: dict[str, str]) -> dict[str, Any]:
    """The Deepness/GeoDeep keys of ``props`` parsed with those tools' rules (``json.loads``
    of each value, ``tile_size``), also for models written before they were quoted: a bare
    ``Segmentor`` and the old ``tiles_size`` key are still read.

    Raises:
        CheckpointError: a value neither tool could parse, naming the key.
    """
    out: dict[str, Any] = {}
    for key in ("model_type", "class_names", "resolution", "tile_size", "tiles_overlap",
                "standardization_mean", "standardization_std", "seg_thresh",
                "seg_small_segment", "det_conf", "det_iou_thresh"):  # fmt: skip
        raw = props.get(key)
        if raw is None and key == "tile_size":
            raw = props.get("tiles_size")  # written by sarmae before metadata version 2
        if raw is None or raw == "":
            continue
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError as exc:
            if key == "model_type" and raw in TASK_TO_DEEPNESS.values():
                out[key] = raw  # a bare name, as sarmae wrote before metadata version 2
                continue
            raise CheckpointError(
                f"ONNX metadata {key}={raw!r} is not JSON, which Deepness and GeoDeep need "
                "(json.loads); export the model again with `sarmae export`"
            ) from exc
    return out


def other_tools(info: ModelInfo) -> dict[str, str]:
    """Which other tools can run ``info``'s model, and why not where they cannot (``sarmae info``
    prints it; README "Other tools")."""
    bands = f"{'+'.join(info.polarisations)} in {info.units}"
    geodeep = (
        "no: GeoDeep's preprocessing takes RGB rasters only (3 bands, 8 bit); this model takes "
        f"{info.in_chans} SAR band{'s' if info.in_chans != 1 else ''} ({bands})"
    )
    if info.in_chans == 3:
        geodeep = f"reads this model's metadata; it feeds RGB 8-bit values, the model wants {bands}"
    return {
        "deepness": (
            f"reads this model's metadata (type, classes, tile, overlap, thresholds); give it a "
            f"layer of {bands}: Deepness converts no SAR units"
        ),
        "geodeep": geodeep,
    }


#: Units a model's input tensor can be in.
MODEL_UNITS = ("db", "intensity", "amplitude")


def _validate(info: ModelInfo) -> None:
    """Refuse metadata that would divide by zero or mislead later (a hand-edited or foreign
    file): every field is checked for its type and range, naming the field."""

    def bad(name: str, want: str) -> CheckpointError:
        return CheckpointError(f"{name} must be {want}, got {getattr(info, name)!r}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    for name in ("class_names", "polarisations"):
        v = getattr(info, name)
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            raise bad(name, "a non-empty list of names")
    if info.units not in MODEL_UNITS:
        raise bad("units", f"one of {', '.join(MODEL_UNITS)}")
    for name in ("tile_size", "patch_size"):
        if not is_int(getattr(info, name)) or getattr(info, name) < 1:
            raise bad(name, "a whole number of pixels, at least 1")
    if not is_int(info.tile_overlap) or not 0 <= info.tile_overlap < info.tile_size:
        raise bad("tile_overlap", f"a whole number of pixels from 0 to {info.tile_size - 1}")
    if info.resolution_m is not None and not (is_num(info.resolution_m) and info.resolution_m > 0):
        raise bad("resolution_m", "a positive number of metres, or null")
    if not (is_num(info.looks) and info.looks > 0):
        raise bad("looks", "a positive number")
    for name in ("seg_threshold", "det_confidence", "det_iou_threshold"):
        if not (is_num(getattr(info, name)) and 0 <= getattr(info, name) <= 1):
            raise bad(name, "a number from 0 to 1")
    norm = info.normalization
    if not isinstance(norm, dict):
        raise bad("normalization", "an object with 'mean' and 'std' lists")
    for key in ("mean", "std"):
        values = norm.get(key, [])
        if not isinstance(values, list) or not all(is_num(x) for x in values):
            raise bad("normalization", f"an object whose {key!r} is a list of finite numbers")
    if any(x <= 0 for x in norm.get("std", [])):
        raise bad("normalization", "an object whose 'std' values are positive")
    if not isinstance(info.outputs, list) or not all(isinstance(x, str) for x in info.outputs):
        raise bad("outputs", "a list of output names")
    if not isinstance(info.dates, list) or (
        info.dates
        and (len(info.dates) != len(info.polarisations) or set(info.dates) != {"before", "after"})
    ):
        raise bad("dates", "empty, or before/after for each channel, both present")
