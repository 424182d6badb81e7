"""The scenes of a many-scene run: from a folder, a glob, a text file or a STAC ItemCollection.

Every form becomes the same list of :class:`Scene` (an id that names the scene's outputs, and
a local path), checked before any work: a run that would write two scenes over one another, or
read a scene from the network, stops here with a message saying what to change.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ...errors import ConfigError

#: Raster files a folder of scenes is taken to hold (what GDAL reads for Sentinel-1 products).
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".jp2")
#: STAC media types of a raster asset (GeoTIFF/COG; the profile parameter varies).
_RASTER_MEDIA = re.compile(r"image/(tiff|vnd\.stac\.geotiff|jp2)", re.IGNORECASE)
_GLOB = re.compile(r"[*?\[]")
#: A scene id that is safe in a file name on every system.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Scene:
    """One scene of a run.

    Attributes:
        id: names the scene's outputs (``<id>_<job>.gpkg``) and its catalogue row.
        path: the raster, a local file.
        footprint: the STAC item's polygon (lon/lat rings), used in the catalogue when the
            raster itself cannot be read; None otherwise.
        before: the scene before the event paired with this one (flood), else None.
    """

    id: str
    path: Path
    footprint: tuple[tuple[tuple[float, float], ...], ...] | None = None
    before: Path | None = None


def is_many(spec: str | os.PathLike) -> bool:
    """Whether a SCENES argument names many scenes rather than one raster.

    A folder, a ``.txt`` list, a ``.json`` STAC collection or a glob pattern that is not itself
    an existing file: no single raster GDAL reads has one of these forms, so the single-scene
    command keeps every input it accepted before.
    """
    path = Path(os.fspath(spec))
    if path.is_dir() or path.suffix.lower() in (".txt", ".json", ".geojson"):
        return True
    return bool(_GLOB.search(os.fspath(spec))) and not path.is_file()


def resolve_scenes(spec: Any, asset: str | None = None) -> list[Scene]:
    """The scenes named by ``spec``.

    Args:
        spec: a folder (its rasters, sorted), a glob pattern (``**`` recurses), a ``.txt`` file
            (one path a line, relative to the file; ``#`` comments), a STAC ItemCollection or
            Item ``.json`` whose assets are local paths or ``file://`` URLs, or a sequence of
            raster paths.
        asset: the STAC asset key of the band to map (``vv``); default: the item's only
            raster asset.

    Raises:
        ConfigError: no scenes, a missing list file, a remote asset, an ambiguous asset, or two
            scenes with the same id.
    """
    if isinstance(spec, (str, os.PathLike)):
        scenes = _from_spec(os.fspath(spec), asset)
    elif isinstance(spec, Sequence):
        scenes = [_scene(Path(os.fspath(p))) for p in spec]
    else:
        raise ConfigError(f"scenes must be a path, a pattern or a list of paths, not {spec!r}")
    if not scenes:
        raise ConfigError(f"no scenes found in {spec}; give a folder of rasters, a glob pattern, "
                          "a .txt list of paths or a STAC ItemCollection .json")  # fmt: skip
    seen: dict[str, Path] = {}
    for s in scenes:
        if s.id in seen and seen[s.id] != s.path:
            raise ConfigError(
                f"two scenes would write the same outputs {s.id!r}: {seen[s.id]} and {s.path}; "
                "rename one, or list them in a STAC collection with distinct item ids"
            )
        seen[s.id] = s.path
    return list({s.id: s for s in scenes}.values())  # the same file listed twice runs once


def _from_spec(text: str, asset: str | None) -> list[Scene]:
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in RASTER_SUFFIXES)
        return [_scene(p) for p in files if p.is_file()]
    suffix = path.suffix.lower()
    if suffix in (".txt", ".json", ".geojson"):
        if not path.is_file():
            raise ConfigError(f"scene list {path} does not exist; check the path")
        if suffix == ".txt":
            return _from_text(path)
        return _from_stac(path, asset)
    if _GLOB.search(text):
        return [_scene(Path(p)) for p in sorted(glob.glob(text, recursive=True))
                if Path(p).is_file()]  # fmt: skip
    return [_scene(path)]


def _from_text(path: Path) -> list[Scene]:
    scenes = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            scenes.append(_scene(_local(line, path.parent, f"{path.name}: {line}")))
    return scenes


def _from_stac(path: Path, asset: str | None) -> list[Scene]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not a JSON file ({exc})") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} is not a STAC ItemCollection or Item (a JSON object)")
    items = doc.get("features") if doc.get("type") == "FeatureCollection" else [doc]
    if doc.get("type") not in ("FeatureCollection", "Feature") or not isinstance(items, list):
        raise ConfigError(
            f"{path} is not a STAC ItemCollection or Item (its type is {doc.get('type')!r}); "
            "save a STAC search result as JSON (pystac-client: items_as_dict())"
        )
    scenes = []
    for i, item in enumerate(items):
        name = str(item.get("id") or f"item{i}")
        href = _asset_href(item.get("assets") or {}, asset, f"{path.name}: item {name}")
        local = _local(href, path.parent, f"{path.name}: item {name} asset {href}")
        scenes.append(Scene(_safe_id(name), local, _stac_footprint(item.get("geometry"))))
    return scenes


def _asset_href(assets: dict[str, Any], key: str | None, where: str) -> str:
    if key is not None:
        # STAC asset keys differ in case between catalogues (Planetary Computer: "vv")
        found = {k.lower(): v for k, v in assets.items()}.get(key.lower())
        if found is None:
            raise ConfigError(f"{where} has no asset {key!r} (it has {', '.join(assets) or 'none'})"
                              "; choose one with --asset")  # fmt: skip
        return str(found.get("href"))
    rasters = [k for k, v in assets.items() if _RASTER_MEDIA.match(str(v.get("type", "")))
               or str(v.get("href", "")).lower().endswith(RASTER_SUFFIXES)]  # fmt: skip
    if len(rasters) != 1:
        raise ConfigError(f"{where} has raster assets {', '.join(rasters) or 'none'}; name the "
                          "band to map with --asset (e.g. --asset vv)")  # fmt: skip
    return str(assets[rasters[0]].get("href"))


def _local(href: str, base: Path, where: str) -> Path:
    """A local path from a path or ``file://`` URL (relative ones from ``base``)."""
    url = urlparse(href)
    if url.scheme == "file":
        return Path(unquote(url.path))
    if url.scheme and len(url.scheme) > 1:  # not a Windows drive letter
        raise ConfigError(
            f"{where}: only local files are mapped; download the asset first (e.g. with "
            "stac-asset or pystac-client) and point the item at it"
        )
    path = Path(href)
    return path if path.is_absolute() else base / path


def _scene(path: Path) -> Scene:
    return Scene(_safe_id(path.stem), path)


def _safe_id(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("._") or "scene"


def _stac_footprint(geometry: Any) -> tuple[tuple[tuple[float, float], ...], ...] | None:
    if not isinstance(geometry, dict) or geometry.get("type") != "Polygon":
        return None
    try:
        return tuple(tuple((float(x), float(y)) for x, y, *_ in ring)
                     for ring in geometry["coordinates"])  # fmt: skip
    except (KeyError, TypeError, ValueError):
        return None
