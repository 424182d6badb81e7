"""Before/after pairs of a many-scene flood run: each scene after the event with the scene
before it that covers the same ground.

An event's after scenes and a set of earlier scenes (an archive date, the same orbit or not)
are given as two lists; a pair is the after scene and the earlier scene whose footprint overlaps
it most (footprints in longitude/latitude, from each raster's georeference, read without its
pixels). An after scene that no earlier scene overlaps is reported, not run on a wrong pair.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..io.raster_io import RasterIO
from .catalogue import Footprint, footprint
from .scenes import Scene


def _box(rings: Footprint | None) -> tuple[float, float, float, float] | None:
    if not rings:
        return None
    x, y = np.asarray(rings[0], dtype=float).T
    return float(x.min()), float(y.min()), float(x.max()), float(y.max())


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Area (square degrees) shared by two lon/lat boxes; 0 when apart."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def pair_scenes(
    after: Sequence[Scene], before: Sequence[Scene], fileio: RasterIO
) -> tuple[list[Scene], dict[str, str]]:
    """The after scenes, each with ``before`` set to the earlier scene it overlaps most.

    Returns:
        The after scenes (``before`` set where a pair was found), and for those without one
        the reason (no overlapping earlier scene, or an unreadable after scene, which the run
        then reports as its own error).
    """
    boxes = {}
    for s in before:
        try:
            boxes[s.path] = _box(footprint(s.path, fileio)) or _box(_rings(s))
        except Exception:  # an unreadable before scene pairs with nothing
            boxes[s.path] = _box(_rings(s))
    out: list[Scene] = []
    missing: dict[str, str] = {}
    for scene in after:
        try:
            box = _box(footprint(scene.path, fileio)) or _box(_rings(scene))
        except Exception:  # unreadable: predict says why when the scene runs
            box = _box(_rings(scene))
        if box is None:
            out.append(scene)
            continue
        shared = [
            (_overlap(box, b), str(p), p)
            for p, b in boxes.items()
            if b is not None and p.resolve() != scene.path.resolve()
        ]
        best = max(shared, default=None)
        if best is None or best[0] <= 0.0:
            missing[scene.id] = (
                f"no scene before the event overlaps {scene.path.name}: add one that covers "
                "its ground to the before scenes"
            )
            out.append(scene)
            continue
        out.append(dataclasses.replace(scene, before=best[2]))
    return out, missing


def _rings(scene: Scene) -> Footprint | None:
    """A STAC item's own footprint, for a scene whose raster cannot be read."""
    if scene.footprint is None:
        return None
    return [list(ring) for ring in scene.footprint]
