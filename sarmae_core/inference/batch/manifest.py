"""Per-scene manifests: what a many-scene run did to each scene, so a rerun does only the rest.

A manifest (``OUTDIR/manifests/<scene>_<job>.json``) records the hashes of what made the
outputs (the scene, the model file, the options) and the outputs themselves. A scene is skipped
on rerun only when its manifest says ``done``, every output is still there as written, and the
hashes still match. The manifest is also the run's claim on its outputs: outputs without one
were not written by this run and are never replaced without ``overwrite``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ...files import atomic_path

#: Bump when what a manifest holds changes meaning: older manifests then redo their scene.
FORMAT = 1
_CHUNK = 1 << 22


def file_fingerprint(path: str | os.PathLike, known: dict[str, Any] | None = None) -> dict:
    """Size, modification time and SHA-256 of a file.

    Hashing a multi-gigabyte scene takes seconds, so a file whose size and modification time
    are those of ``known`` (its fingerprint in the manifest) keeps the recorded hash, as ``make``
    and git's index trust them; any other file is hashed again, so a touched but unchanged file
    still matches and an edited one does not.
    """
    path = Path(path)
    stat = path.stat()
    fp = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if known and known.get("size") == fp["size"] and known.get("mtime_ns") == fp["mtime_ns"]:
        fp["sha256"] = known.get("sha256")
        return fp
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    fp["sha256"] = digest.hexdigest()
    return fp


def options_digest(options: dict[str, Any]) -> str:
    """SHA-256 of the options that shape the outputs, as canonical JSON."""
    text = json.dumps(options, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def manifest_path(outdir: Path, scene_id: str, job: str) -> Path:
    return outdir / "manifests" / f"{scene_id}_{job}.json"


def read_manifest(path: Path) -> dict[str, Any] | None:
    """A manifest, or None where there is none or it cannot be read (the scene is redone)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def write_manifest(path: Path, data: dict[str, Any]) -> None:
    """Write a manifest in one step (a reader sees the old one or the new one, never half)."""
    with atomic_path(path, fsync=True) as tmp:
        tmp.write_text(json.dumps({"format": FORMAT, **data}, indent=1, default=str),
                       encoding="utf-8")  # fmt: skip


def outputs_record(files: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """How each output looked when committed: a later change or removal redoes the scene."""
    record = {}
    for product, path in files.items():
        stat = Path(path).stat()
        record[product] = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return record


def outputs_intact(record: dict[str, dict[str, Any]]) -> bool:
    """Whether every output is still the file the run committed."""
    for entry in record.values():
        try:
            stat = Path(entry["path"]).stat()
        except (OSError, KeyError):
            return False
        if stat.st_size != entry.get("size") or stat.st_mtime_ns != entry.get("mtime_ns"):
            return False
    return bool(record)


def unchanged(
    manifest: dict[str, Any], scene: Path, options: str, before: Path | None = None
) -> bool:
    """Whether ``manifest`` records a finished run of ``scene`` with these options and the
    same model file (and, for a flood pair, the same unchanged ``before`` scene), whose outputs
    are intact."""
    if manifest.get("status") != "done" or manifest.get("options") != options:
        return False
    if not outputs_intact(manifest.get("outputs") or {}):
        return False
    try:
        known = manifest.get("scene") or {}
        if file_fingerprint(scene, known)["sha256"] != known.get("sha256"):
            return False
        known_before = manifest.get("before") or {}
        if (str(before) if before is not None else None) != known_before.get("path"):
            return False  # paired with another before scene now (or no longer paired)
        if before is not None:
            if file_fingerprint(before, known_before)["sha256"] != known_before.get("sha256"):
                return False
        model = manifest.get("model")
        if isinstance(model, dict):  # a model file (a model object is in the options)
            return file_fingerprint(model["path"], model)["sha256"] == model.get("sha256")
    except (OSError, KeyError):
        return False
    return True
