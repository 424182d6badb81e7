"""ETCI 2021 flood detection tiles: ``<scene>/[tiles/]{vv,vh,flood_label,water_body_label}/``.

Stored values are the competition's 8-bit scaling of Sentinel-1 backscatter (its dB mapping is
not documented: declare an affine in ``data.units``); VV = 255 marks no-data, which becomes
"ignore" in the label map. File names are either ``<tile>.png`` in every folder or the official
``<tile>_vv.png`` / ``<tile>_vh.png`` with ``<tile>.png`` labels.

Targets (``options.target``): ``water`` (default) = flood OR permanent water body, the dark
open water a SAR water model sees; ``flood`` or ``water_body`` alone.

Splits (``options.split_by``): ``scene`` (default) holds out whole scenes
(``options.test_scenes``, default Nebraska): neighbouring tiles of one scene are strongly
correlated, so a tile-level random split would overstate accuracy. ``position`` holds out the
easternmost ``options.test_fraction`` of tile columns of every scene (the ``_x-<col>`` in the
tile names, as in ``tiles.csv``).

Context (``options.margin``, pixels, training samples only): each tile comes with this many
pixels of its scene around it, cut from the neighbouring tiles of the same split at the columns
and rows their names carry (no-data where a neighbour was not kept), so that crops and
zoomed-out samples see across tile edges as the model does when it maps a whole scene in 512 px
tiles, instead of padding at every tile edge.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sarmae_core.errors import ConfigError, InputError

from ..imageio import read_image
from .base import IGNORE, Loaded, TaskDataset, read_mask

#: A tile's column and row in its scene, from its name (``<scene>_x-<col>_y-<row>``).
TILE_POSITION = re.compile(r"_x-(\d+)_y-(\d+)$")
TARGETS = ("water", "flood", "water_body")


class Etci(TaskDataset):
    """ETCI 2021 tiles as binary water segmentation (0 = other, 1 = water, 255 = no-data)."""

    task: ClassVar[str] = "segmentation"
    OPTIONS: ClassVar[dict[str, Any]] = {
        "target": "water",
        "split_by": "scene",
        "test_scenes": ["nebraska_20170213t002121"],
        "test_fraction": 0.2,
        "margin": 0,
    }
    BANDS: ClassVar[list[str]] = ["vv"]

    def list_items(self) -> list[tuple[Path, str]]:
        if self.options["target"] not in TARGETS:
            raise ConfigError(f"data.options.target must be one of {TARGETS}")
        if any(b not in ("vv", "vh") for b in self.bands):
            raise ConfigError(f"ETCI bands are vv and vh, got {self.bands}")
        self.class_names = ["background", "water"]
        scenes = []
        for d in sorted(p for p in self.root.iterdir() if p.is_dir()):
            tiles = d / "tiles" if (d / "tiles" / "vv").is_dir() else d
            if (tiles / "vv").is_dir():
                scenes.append((d.name, tiles))
        if not scenes:
            raise InputError(f"{self.root} holds no ETCI scene (<scene>/[tiles/]vv/)")
        items = []
        # (tile folder, column, row) -> tile name, of this split only: context never crosses
        # into held-out tiles
        self._grid: dict[tuple[Path, int, int], str] = {}
        for name, tiles in scenes:
            names = sorted(re.sub(r"_vv$", "", p.stem) for p in (tiles / "vv").glob("*.png"))
            test = self._test_tiles(name, names)
            wanted = [n for n in names if (n in test) == (self.split == "test")]
            items += [(tiles, n) for n in wanted]
            for n in wanted:
                if m := TILE_POSITION.search(n):
                    self._grid[tiles, int(m.group(1)), int(m.group(2))] = n
        if self.split not in ("train", "test"):
            raise InputError(f"ETCI splits are train and test, got {self.split!r}")
        margin = self.options["margin"]
        if not isinstance(margin, int) or isinstance(margin, bool) or margin < 0:
            raise ConfigError(
                f"data.options.margin must be a whole number of pixels >= 0, got {margin!r}"
            )
        return items

    def _test_tiles(self, scene: str, names: list[str]) -> set[str]:
        how = self.options["split_by"]
        if how == "scene":
            return set(names) if scene in self.options["test_scenes"] else set()
        if how != "position":
            raise ConfigError(f"data.options.split_by must be 'scene' or 'position', got {how!r}")
        cols = {n: int(m.group(1)) for n in names if (m := TILE_POSITION.search(n))}
        if not cols:
            return set()
        cut = np.quantile(list(cols.values()), 1.0 - float(self.options["test_fraction"]))
        return {n for n, c in cols.items() if c > cut}

    def item_id(self, item: tuple[Path, str]) -> str:
        return item[1]

    def _plane(self, tiles: Path, folder: str, name: str) -> Path:
        for cand in (tiles / folder / f"{name}.png", tiles / folder / f"{name}_{folder}.png"):
            if cand.is_file():
                return cand
        raise InputError(f"{tiles / folder} has no file for tile {name}")

    def _tile(self, tiles: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Stored bands [C, H, W] (255 = no-data) and the target water mask [H, W]."""
        image = np.stack([read_image(self._plane(tiles, b, name))[0] for b in self.bands])
        target = self.options["target"]
        flood = read_mask(self._plane(tiles, "flood_label", name)) > 127
        water = flood
        if target != "flood":
            body = read_mask(self._plane(tiles, "water_body_label", name)) > 127
            water = body if target == "water_body" else (flood | body)
        return image, water

    def load(self, item: tuple[Path, str]) -> Loaded:
        tiles, name = item
        image, water = self._tile(tiles, name)
        m = self.options["margin"] if self.train else 0
        if m and (pos := TILE_POSITION.search(name)):
            image, water = self._with_context(
                tiles, int(pos.group(1)), int(pos.group(2)), image, water, m
            )
        valid = (image != 255).all(axis=0)  # 255 = no-data at swath edges (dataset README)
        label = np.where(valid, water.astype(np.uint8), IGNORE).astype(np.uint8)
        return Loaded(image, label, valid)

    def _with_context(
        self, tiles: Path, col: int, row: int, image: np.ndarray, water: np.ndarray, m: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The tile at (``col``, ``row``) with ``m`` pixels of its split's neighbours around it."""
        h, w = image.shape[-2:]
        canvas = np.full((image.shape[0], h + 2 * m, w + 2 * m), 255, image.dtype)
        mask = np.zeros(canvas.shape[-2:], bool)
        reach_y, reach_x = -(-m // h), -(-m // w)  # tiles of neighbours the margin reaches
        for dy in range(-reach_y, reach_y + 1):
            for dx in range(-reach_x, reach_x + 1):
                if (dy, dx) == (0, 0):
                    plane, wet = image, water
                elif (n := self._grid.get((tiles, col + dx, row + dy))) is not None:
                    plane, wet = self._tile(tiles, n)
                else:
                    continue
                # the neighbour's pixels on the canvas, clipped to it (every neighbour within
                # reach overlaps the canvas: reach * tile < margin + tile)
                y0, x0 = m + dy * h, m + dx * w
                cy0, cx0 = max(y0, 0), max(x0, 0)
                cy1, cx1 = min(y0 + h, canvas.shape[-2]), min(x0 + w, canvas.shape[-1])
                src = np.s_[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
                canvas[:, cy0:cy1, cx0:cx1] = plane[(slice(None), *src)]
                mask[cy0:cy1, cx0:cx1] = wet[src]
        return canvas, mask
