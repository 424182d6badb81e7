"""Pretraining data: random windows of rasters, image chips, SAR-1M and paired folders, mixed.

Each source yields SAR in the model's units (and, when it has one, the co-registered optical
image); :class:`PretrainDataset` concatenates the sources so paired and unpaired samples mix in
one epoch. Sample ``i`` of epoch ``e`` is a pure function of (seed, e, i), so a resumed run sees
exactly the data an uninterrupted one would. Augmentations move pixels only (flips, quarter
turns), the same for SAR and optical.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from torch.utils.data import Dataset

from sarmae_core.errors import InputError, RasterError, SarmaeError

from .config import AugmentConfig, PretrainDataConfig, SourceConfig, UnitsConfig, resolve_data_path
from .imageio import (
    IMAGE_SUFFIXES,
    RASTER_SUFFIXES,
    find_files,
    flip_rot,
    read_image,
    read_rgb,
    resize,
    to_model_units,
)

log = logging.getLogger(__name__)

SOURCE_KINDS = ("rasters", "chips", "sar1m", "paired_folders")


def find_rasters(inputs: list[str | Path]) -> list[Path]:
    """Raster files from files, folders (searched recursively) and globs."""
    return find_files(inputs, RASTER_SUFFIXES, "raster files")


class Source(Protocol):
    """A pretraining source: ``get`` returns SAR [C, w, w], optical [3, w, w] or None, where,
    and what the optical image is (its file and crop box, None without one): the key of the
    frozen teacher's features (:class:`sarmae_core.models.mae.TeacherFeatureCache`)."""

    def __len__(self) -> int: ...

    def get(
        self, index: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None, str, str | None]: ...


class RasterWindows:
    """Random ``window`` x ``window`` windows of rasters of any size (only the window is read).

    Windows touching nodata or NaN are redrawn (up to 20 times).
    """

    def __init__(
        self,
        paths: list[Path],
        window: int,
        units: UnitsConfig,
        model_units: str,
        bands: list[int],
        length: int,
    ) -> None:
        self.window, self.units, self.model_units, self.bands = window, units, model_units, bands
        self.length = length
        self.paths, self.shapes, self.nodata = [], [], []
        for p in paths:
            try:
                with rasterio.open(p) as src:
                    if src.height < window or src.width < window:
                        log.warning(
                            "skipping %s: %dx%d is smaller than one %dpx window",
                            p,
                            src.width,
                            src.height,
                            window,
                        )
                        continue
                    if max(bands) > src.count:
                        raise InputError(f"{p} has {src.count} band(s); asked for bands {bands}")
                    self.shapes.append((src.height, src.width))
                    self.nodata.append(src.nodata)
                    self.paths.append(p)
            except rasterio.RasterioIOError as exc:
                log.warning("skipping unreadable %s: %s", p, exc)
        if not self.paths:
            raise RasterError(
                f"none of the {len(paths)} raster(s) can give a {window}px window; "
                "check the paths or use a smaller model.img_size"
            )

    def __len__(self) -> int:
        return self.length

    def get(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, None, str, None]:
        w = self.window
        for _ in range(20):
            k = int(rng.integers(len(self.paths)))
            h, wd = self.shapes[k]
            row, col = int(rng.integers(h - w + 1)), int(rng.integers(wd - w + 1))
            try:
                with rasterio.open(self.paths[k]) as src:
                    data = src.read(self.bands, window=Window(col, row, w, w)).astype(np.float32)
            except rasterio.RasterioIOError as exc:
                raise RasterError(f"cannot read {self.paths[k]}: {exc}") from exc
            valid = np.isfinite(data)
            if self.nodata[k] is not None:
                valid &= data != self.nodata[k]
            if valid.all():
                where = f"{self.paths[k]} window row {row} col {col}"
                return to_model_units(data, self.units, self.model_units), None, where, None
        raise InputError(f"found no window without nodata in {self.paths[k]} after 20 tries")


class ImageChips:
    """One sample per image file (SAR only), resized (the authors' recipe) or cropped."""

    def __init__(
        self,
        paths: list[Path],
        window: int,
        units: UnitsConfig,
        model_units: str,
        bands: list[int],
        mode: str,
        crops_per_item: int = 1,
    ) -> None:
        if mode not in ("resize", "crop"):
            raise InputError(f"chip_mode must be 'resize' or 'crop', got {mode!r}")
        if crops_per_item < 1 or (crops_per_item > 1 and mode != "crop"):
            raise InputError(
                f"crops_per_item must be 1, or more with chip_mode: crop (got {crops_per_item} "
                f"with {mode}): a resized chip is the same sample each time"
            )
        self.pairs: list[tuple[Path, Path | None]] = [(p, None) for p in paths]
        self.window, self.units, self.model_units = window, units, model_units
        self.bands, self.mode, self.crops_per_item = bands, mode, crops_per_item

    def __len__(self) -> int:
        return len(self.pairs) * self.crops_per_item

    def get(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, Any, str, str | None]:
        sar_path, opt_path = self.pairs[index % len(self.pairs)]
        sar = read_image(sar_path, self.bands)
        if not np.isfinite(sar).all():
            raise InputError(f"{sar_path} holds nodata or NaN; pretraining chips must be whole")
        w = self.window
        h, wd = sar.shape[-2:]
        # Crop box in relative coordinates, so an optical image of another size follows it.
        if self.mode == "crop" and h >= w and wd >= w:
            r0, c0 = int(rng.integers(h - w + 1)), int(rng.integers(wd - w + 1))
            box = (r0 / h, c0 / wd, (r0 + w) / h, (c0 + w) / wd)
            sar = sar[:, r0 : r0 + w, c0 : c0 + w]
        else:
            box = (0.0, 0.0, 1.0, 1.0)
            sar = resize(sar, (w, w))  # 8-bit chips are resized as stored, as the authors do
        optical, key = None, None
        if opt_path is not None:
            opt = read_rgb(opt_path)
            oh, ow = opt.shape[-2:]
            r0, c0 = round(box[0] * oh), round(box[1] * ow)
            r1, c1 = max(r0 + 1, round(box[2] * oh)), max(c0 + 1, round(box[3] * ow))
            optical = resize(opt[:, r0:r1, c0:c1], (w, w))
            key = f"{opt_path}|rows {r0}-{r1} cols {c0}-{c1}|{w} px"
        return to_model_units(sar, self.units, self.model_units), optical, str(sar_path), key


class PairedChips(ImageChips):
    """SAR chips of which some have a co-registered optical image."""

    def __init__(
        self,
        pairs: list[tuple[Path, Path | None]],
        window: int,
        units: UnitsConfig,
        model_units: str,
        bands: list[int],
        mode: str,
        crops_per_item: int = 1,
    ) -> None:
        super().__init__([], window, units, model_units, bands, mode, crops_per_item)
        self.pairs = pairs


def sar1m_pairs(root: Path) -> list[tuple[Path, Path | None]]:
    """(SAR, optical or None) from the SAR-1M layout: ``paired.json`` and ``unpaired.json``.

    Entries may be ``{"sar": ..., "optical": ...}`` mappings, ``[sar, optical]`` lists or plain
    SAR paths; paths are relative to the root, or to ``SAR/`` and ``OPT/`` inside it.
    """
    files = [root / "paired.json", root / "unpaired.json"]
    if not any(f.is_file() for f in files):
        raise InputError(
            f"{root} has neither paired.json nor unpaired.json; the SAR-1M layout is SAR/, OPT/, "
            "paired.json (list of {sar, optical}) and unpaired.json (list of SAR paths)"
        )

    def locate(rel: str, sub: str) -> Path:
        for cand in (root / rel, root / sub / rel):
            if cand.exists():
                return cand
        return root / sub / rel  # missing files are counted when read

    pairs: list[tuple[Path, Path | None]] = []
    for f in files:
        if not f.is_file():
            continue
        try:
            entries = json.loads(f.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{f} is not valid JSON: {exc}") from None
        for e in entries:
            if isinstance(e, str):
                sar, opt = e, None
            elif isinstance(e, (list, tuple)):
                sar, opt = e[0], (e[1] if len(e) > 1 else None)
            else:
                sar, opt = e.get("sar"), e.get("optical", e.get("opt"))
            opt_path = locate(opt, "OPT") if opt else None
            pairs.append((locate(sar, "SAR"), opt_path))
    return pairs


def folder_pairs(sar_dir: Path, opt_dir: Path) -> list[tuple[Path, Path | None]]:
    """SAR files of ``sar_dir`` with the optical file of the same relative name (any suffix)."""
    sars = find_files([sar_dir], IMAGE_SUFFIXES, "SAR images")
    opts = {}
    if opt_dir.is_dir():
        for o in opt_dir.rglob("*"):
            if o.suffix.lower() in IMAGE_SUFFIXES:
                opts[o.relative_to(opt_dir).with_suffix("").as_posix()] = o
    else:
        raise InputError(f"optical folder {opt_dir} does not exist")
    pairs = [(s, opts.get(s.relative_to(sar_dir).with_suffix("").as_posix())) for s in sars]
    log.info(
        "%s: %d of %d SAR images have an optical pair in %s",
        sar_dir,
        sum(o is not None for _, o in pairs),
        len(pairs),
        opt_dir,
    )
    return pairs


def build_source(
    cfg: SourceConfig, root: str, window: int, model_units: str
) -> ImageChips | RasterWindows:
    """One source from its config (paths resolved under ``root``)."""
    if cfg.kind not in SOURCE_KINDS:
        from .config import nearest

        raise InputError(
            f"unknown source kind {cfg.kind!r}{nearest(cfg.kind, SOURCE_KINDS)} "
            f"(kinds: {', '.join(SOURCE_KINDS)})"
        )
    paths = [resolve_data_path(root, p) for p in cfg.paths]
    if cfg.kind == "rasters":
        files = find_rasters(paths)[: cfg.max_items]
        return RasterWindows(
            files, window, cfg.units, model_units, cfg.bands, cfg.windows_per_epoch
        )
    if cfg.kind == "chips":
        files = find_files(paths, IMAGE_SUFFIXES, "image chips")[: cfg.max_items]
        return ImageChips(files, window, cfg.units, model_units, cfg.bands, cfg.chip_mode,
                          cfg.crops_per_item)  # fmt: skip
    if cfg.kind == "sar1m":
        if len(paths) != 1 or not paths[0].is_dir():
            raise InputError(f"a sar1m source takes one existing root folder in paths, got {paths}")
        pairs = sar1m_pairs(paths[0])[: cfg.max_items]
    else:
        if not cfg.sar or not cfg.optical:
            raise InputError("a paired_folders source needs both 'sar' and 'optical' folders")
        pairs = folder_pairs(
            resolve_data_path(root, cfg.sar), resolve_data_path(root, cfg.optical)
        )[: cfg.max_items]
    if not pairs:
        raise InputError(f"source {cfg.kind} {paths or cfg.sar} lists no images")
    return PairedChips(pairs, window, cfg.units, model_units, cfg.bands, cfg.chip_mode,
                       cfg.crops_per_item)  # fmt: skip


class PretrainDataset(Dataset):
    """All sources of a run, concatenated; unreadable samples are skipped and counted.

    ``__getitem__`` returns a dict (``sar``, ``optical`` or None, ``paired``, ``index``,
    ``where``), or None for an unreadable sample (dropped by :func:`collate_pretrain`).
    """

    def __init__(
        self, sources: list[Source], window: int, augment: AugmentConfig, seed: int = 0
    ) -> None:
        if not sources:
            raise InputError("no pretraining data: give data paths or data.sources in the config")
        self.sources, self.window, self.augment, self.seed = sources, window, augment, seed
        self.offsets = np.cumsum([0] + [len(s) for s in sources])
        self.epoch = 0
        self.has_optical = any(
            any(o is not None for _, o in getattr(s, "pairs", [])) for s in sources
        )
        self.skipped: dict[int, str] = {}
        self._probe()

    def _probe(self, n: int = 8) -> None:
        """Fail at start-up, with the reason, when none of a few spread-out samples reads."""
        picks = np.unique(np.linspace(0, len(self) - 1, min(n, len(self))).astype(int))
        errors = []
        for i in picks:
            try:
                self._load(int(i), np.random.default_rng(0))
                return
            except (SarmaeError, OSError, ValueError) as exc:
                errors.append(str(exc))
        raise InputError(
            f"none of {len(picks)} probed samples can be read; first error: {errors[0]}"
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _load(
        self, index: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, Any, str, str | None]:
        k = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.sources[k].get(index - int(self.offsets[k]), rng)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        try:
            sar, optical, where, key = self._load(index, rng)
        except (SarmaeError, OSError, ValueError) as exc:
            if index not in self.skipped:
                log.warning("skipping unreadable sample %d: %s", index, exc)
            self.skipped[index] = str(exc)
            return None
        k = int(rng.integers(4)) if self.augment.rot90 else 0
        flip = bool(rng.random() < 0.5) if self.augment.flip else False
        sar = flip_rot(sar, k, flip)
        optical = flip_rot(optical, k, flip) if optical is not None else None
        return {
            "sar": torch.from_numpy(sar),
            "optical": optical,
            "optical_key": f"{key}|rot90 x{k}|flip {int(flip)}" if key is not None else None,
            "paired": optical is not None,
            "index": index,
            "where": where,
        }


def collate_pretrain(samples: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Stack a batch, dropping unreadable (None) samples; optical zeros where unpaired."""
    ok = [s for s in samples if s is not None]
    if not ok:
        return None
    sar = torch.stack([s["sar"] for s in ok])
    paired = torch.tensor([s["paired"] for s in ok], dtype=torch.bool)
    optical = None
    if paired.any():
        shape = next(s["optical"].shape for s in ok if s["paired"])
        optical = torch.stack(
            [torch.from_numpy(s["optical"]) if s["paired"] else torch.zeros(shape) for s in ok]
        )
    return {
        "sar": sar,
        "optical": optical,
        "paired": paired,
        "index": [s["index"] for s in ok],
        "where": [s["where"] for s in ok],
        "optical_keys": [s["optical_key"] for s in ok],
        "dropped": len(samples) - len(ok),
    }


def build_pretrain_dataset(
    cfg: PretrainDataConfig, window: int, model_units: str, seed: int
) -> PretrainDataset:
    """The mixed dataset of every configured source."""
    sources = [build_source(s, cfg.root, window, model_units) for s in cfg.sources]
    for s, sc in zip(sources, cfg.sources, strict=True):
        log.info("source %s %s: %d samples per epoch", sc.kind, sc.paths or sc.sar, len(s))
    return PretrainDataset(sources, window, cfg.augment, seed)
