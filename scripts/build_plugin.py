#!/usr/bin/env python3
"""Build the installable QGIS plugin zip: the plugin, the torch-free engine, models, metadata.

    python scripts/build_plugin.py [--out dist] [--model water=PATH.onnx ...] [--weights int8]

The zip holds one folder, ``sarmae_plugin/`` (QGIS's plugin manager installs it as is):

    sarmae_plugin/
      metadata.txt, LICENSE, *.py, processing/, icons/     the plugin (from qgis_plugin/)
      _vendor/sarmae_core/                                   the engine, torch-free part only
        models/bundled/<name>.onnx                           bundled models

The zip's models have int8 matrix products (:mod:`sarmae_core.export.weights`): the plugin
installs the CPU onnxruntime, on which they run a little faster in a third of the bytes, and
held-out IoU/AP moved by at most 0.1 point (README, "Smaller models"). ``--weights float16``
keeps float32 arithmetic in half the bytes; ``--weights float32`` copies the files as they are.

The engine is vendored as a subpackage and imported by its qualified name (see
``qgis_plugin/core.py``), so users install nothing but onnxruntime and an installed
``sarmae_core`` of another version never mixes with it. It reads and writes files with GDAL's
own bindings (``osgeo``, shipped by QGIS): the rasterio IO backend is left out. The build
refuses a vendored module that imports a sibling left out of the zip, or torch, rasterio and
the like at module level, so a change in ``sarmae_core`` cannot silently break the plugin.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = "sarmae_plugin"
#: Engine modules the plugin needs (paths relative to sarmae_core/); inference/ is added whole.
CORE_FILES = (
    "__init__.py",
    "errors.py",
    "config.py",
    "units.py",
    "files.py",
    "contract/__init__.py",
    "contract/metadata.py",
    "contract/reader.py",
)
#: Modules left out on purpose: the rasterio IO backend (rasterio, pyogrio, shapely); the
#: engine imports it only when asked for, by name. (torch's backend lives in models/.)
CORE_EXCLUDED = {"inference/io/rasterio_io.py"}
#: Must never be imported at module level by what the plugin carries: the plugin's inference
#: may import numpy, onnxruntime and GDAL's osgeo only.
FORBIDDEN = {"torch", "timm", "torchvision", "qgis", "rasterio", "affine", "shapely", "pyproj",
             "scipy", "fiona"}  # fmt: skip
#: Fixed timestamp: the same sources give the same zip.
ZIP_TIME = (2024, 1, 1, 0, 0, 0)


def plugin_files() -> dict[str, Path]:
    """Archive name -> source path of the plugin code and resources."""
    src = ROOT / "qgis_plugin"
    out: dict[str, Path] = {}
    for path in sorted(src.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            out[f"{PLUGIN_DIR}/{path.relative_to(src).as_posix()}"] = path
    out[f"{PLUGIN_DIR}/LICENSE"] = ROOT / "LICENSE"
    return out


def core_files() -> dict[str, Path]:
    """Archive name -> source path of the vendored engine."""
    core = ROOT / "sarmae_core"
    rels = list(CORE_FILES) + [
        p.relative_to(core).as_posix() for p in sorted((core / "inference").rglob("*.py"))
    ]
    rels = [r for r in dict.fromkeys(rels) if r not in CORE_EXCLUDED]
    out = {f"{PLUGIN_DIR}/_vendor/sarmae_core/{r}": core / r for r in rels}
    missing = [str(p) for p in out.values() if not p.is_file()]
    if missing:
        raise SystemExit(f"engine files missing: {missing}")
    return out


def check_imports(files: dict[str, Path]) -> None:
    """Every relative import resolves inside the zip; nothing forbidden at module level."""
    prefix = f"{PLUGIN_DIR}/_vendor/sarmae_core/"
    carried = {name[len(prefix) :] for name in files if name.startswith(prefix)}
    problems: list[str] = []
    for name, path in files.items():
        if not (name.startswith(prefix) and path.suffix == ".py"):
            continue
        rel = name[len(prefix) :]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in tree.body:  # module level only: imports inside functions are lazy
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
                if roots & FORBIDDEN:
                    problems.append(f"{rel} imports {sorted(roots & FORBIDDEN)}")
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and (node.module or "").split(".")[0] in FORBIDDEN:
                    problems.append(f"{rel} imports {node.module}")
                if node.level > 0:
                    target = _resolve(rel, node.level, node.module)
                    # "" is the package root (`from .. import x` one level down)
                    base = f"{target}/" if target else ""
                    candidates = [f"{target}.py", f"{base}__init__.py"]
                    candidates += [f"{base}{a.name}.py" for a in node.names]
                    if not any(c in carried for c in candidates):
                        problems.append(f"{rel} imports {target} which is not carried")
    if problems:
        raise SystemExit("the vendored engine would not import:\n  " + "\n  ".join(problems))


def _resolve(rel: str, level: int, module: str | None) -> str:
    parts = rel.split("/")[:-1]
    parts = parts[: len(parts) - (level - 1)] if level > 1 else parts
    if module:
        parts += module.split(".")
    return "/".join(parts)


def model_files(extra: list[str]) -> dict[str, Path]:
    """Bundled models: ``sarmae_core/models/bundled/*.onnx`` plus ``NAME=PATH`` given."""
    dest = f"{PLUGIN_DIR}/_vendor/sarmae_core/models/bundled"
    out = {
        f"{dest}/{p.name}": p
        for p in sorted((ROOT / "sarmae_core" / "models" / "bundled").glob("*.onnx*"))
    }
    for item in extra:
        name, sep, path = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_-]+", name) or not Path(path).is_file():
            raise SystemExit(f"--model wants NAME=PATH to an existing .onnx file, got {item!r}")
        out[f"{dest}/{name}.onnx"] = Path(path)
    return out


def check_metadata(path: Path) -> str:
    """The metadata's version, which must be sarmae_core's (one version for both)."""
    parser = configparser.ConfigParser(inline_comment_prefixes=None)
    parser.read(path, encoding="utf-8")
    general = parser["general"]
    for key in ("name", "qgisMinimumVersion", "description", "version", "author", "about"):
        if not general.get(key):
            raise SystemExit(f"metadata.txt lacks {key}")
    text = (ROOT / "sarmae_core" / "__init__.py").read_text(encoding="utf-8")
    core_version = re.search(r'__version__ = "([^"]+)"', text)
    if core_version is None or core_version.group(1) != general["version"]:
        raise SystemExit(
            f"metadata.txt version {general['version']} differs from sarmae_core's "
            f"{core_version.group(1) if core_version else '?'}; make them equal"
        )
    return general["version"]


def model_bytes(path: Path, weights: str) -> bytes:
    """A bundled model's bytes in the zip: as is, or with smaller weights."""
    if weights == "float32":
        return path.read_bytes()
    try:
        from sarmae_core.export.weights import compact_bytes
    except ImportError as exc:  # onnx comes with the [export] extra
        raise SystemExit(
            f"--weights {weights} needs the onnx package ({exc}): pip install 'sarmae[export]', "
            "or pass --weights float32"
        ) from None
    return compact_bytes(path, weights)


def build(out_dir: Path, models: list[str], weights: str = "int8") -> Path:
    version = check_metadata(ROOT / "metadata.txt")
    files = plugin_files()
    files[f"{PLUGIN_DIR}/metadata.txt"] = ROOT / "metadata.txt"
    core = core_files()
    check_imports(core)
    files.update(core)
    bundled = model_files(models)
    files.update(bundled)
    vendor_init = (
        '"""Third-party code carried by the plugin: sarmae_core\'s torch-free engine, imported\n'
        'as a subpackage (see ../core.py), never put on sys.path."""\n'
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PLUGIN_DIR}-{version}.zip"
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        _write(zf, f"{PLUGIN_DIR}/_vendor/__init__.py", vendor_init.encode())
        for name in sorted(files):
            is_model = name in bundled and name.endswith(".onnx")
            _write(
                zf,
                name,
                model_bytes(files[name], weights) if is_model else files[name].read_bytes(),
            )
    tmp.replace(target)
    return target


def _write(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="bundle PATH as model NAME (e.g. water=runs/water.onnx); repeatable",
    )
    parser.add_argument(
        "--weights",
        choices=("int8", "float16", "float32"),
        default="int8",
        help="how the bundled models store their weights (README, 'Smaller models')",
    )
    args = parser.parse_args(argv)
    target = build(args.out, args.model, args.weights)
    with zipfile.ZipFile(target) as zf:
        names = zf.namelist()
    models = [n.rsplit("/", 1)[1] for n in names if "/models/bundled/" in n]
    print(f"{target} ({target.stat().st_size / 1e6:.2f} MB, {len(names)} files)")
    print(f"bundled models: {', '.join(models) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
