"""Reading run configs: YAML -> nested dataclasses with checked keys and types, and overrides.

Generic over the dataclasses of :mod:`sarmae_train.config`: :func:`build` walks the type hints, so
a misspelt key anywhere fails with its dotted path and the nearest valid key, and a value of the
wrong type names its key.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from sarmae_core.config import from_dict
from sarmae_core.errors import ConfigError

#: Repository root: shipped configs say ``root: ../shared/data`` relative to it.
REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


# ------------------------------------------------------------------------------ building
def build(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass ``cls`` from nested plain data, checking every key and leaf type.

    Raises:
        ConfigError: unknown key (with its dotted path and the nearest valid key) or a value of
            the wrong type.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config section {where or 'top level'!r} must be a mapping, got {data!r}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        if key in hints:
            values[key] = _coerce(hints[key], value, f"{where}{key}")
    try:
        return from_dict(cls, {**data, **values})
    except ConfigError as exc:
        if "unknown" in str(exc) and where:
            raise ConfigError(f"in section {where.rstrip('.')!r}: {exc}") from None
        raise
    except TypeError as exc:  # a dataclass without defaults for some field
        raise ConfigError(f"{where.rstrip('.') or 'config'}: {exc}") from None


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; build nested dataclasses."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        errors = []
        for a in args:
            try:
                return _coerce(a, value, key)
            except ConfigError as exc:
                errors.append(exc)
                if "unknown" in str(exc):
                    raise
        raise errors[0]
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value):
            return value
        return build(tp, value, f"{key}.")
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            value = [value]  # `bands=1` on the command line means [1]
        return [_coerce(item, v, f"{key}.{i}") for i, v in enumerate(value)]
    if origin is dict or tp is Any:
        if origin is dict and not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if tp in (int, float):
        if isinstance(value, str):
            value = _number(value, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        if tp is int and float(value) != int(value):
            raise ConfigError(f"{key} must be a whole number, got {value!r}")
        return tp(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key} must be text, got {value!r}")
        return str(value)
    return value


def _number(text: str, key: str) -> float:
    try:
        return float(eval_fraction(text))
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {text!r}") from None


def eval_fraction(text: str) -> float:
    """``"35/255"`` -> 0.137..., ``"1e-4"`` -> 1e-4 (YAML 1.1 reads both as text)."""
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)


# ------------------------------------------------------------------------------ files
def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path`` (a file, or the name of a shipped config)."""
    path = Path(path)
    if not path.is_file() and (CONFIG_DIR / path.name).is_file() and len(path.parts) == 1:
        path = CONFIG_DIR / path.name
    if not path.is_file():
        shipped = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
        raise ConfigError(f"config file {path} does not exist; shipped configs: {shipped}")
    with path.open() as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=1e-4"`` -> (``["optim", "lr"]``, 1e-4); values are read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not key=value (e.g. optim.lr=1e-4)")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override key {key!r} is empty or has an empty part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        try:  # YAML 1.1 leaves 1e-4 as text
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys in nested plain data (list items by index: ``data.sources.0.units``)."""
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):
                node = node[_index(node, part, where)]
            else:
                if node.get(part) is None:
                    if parts[i + 1].isdigit():
                        raise ConfigError(f"{where} has no item {parts[i + 1]}: it is not a list")
                    node[part] = {}
                node = node[part]
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"{where} is a value, not a section; cannot set {text!r}")
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, ".".join(parts))] = value
        else:
            node[last] = value
    return data


def _index(items: list, part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise ConfigError(f"{where}: expected an index below {len(items)}, got {part!r}")
    return int(part)


def load_config(
    cls: type, path: str | Path | None = None, overrides: list[str] | None = None
) -> Any:
    """Read ``path`` (optional), apply ``overrides`` and build ``cls``."""
    data = read_yaml(path) if path else {}
    return build(cls, apply_overrides(data, list(overrides or [])))


def to_plain(cfg: Any) -> dict[str, Any]:
    """Plain JSON-serialisable data of a config (for checkpoint headers and reports)."""
    return dataclasses.asdict(cfg)


def resolve_data_path(root: str | Path, path: str | Path) -> Path:
    """``path`` under ``root``; a relative root is tried from the working folder, then from the
    repository root (so shipped configs work from anywhere inside the checkout)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    base = Path(root).expanduser()
    if base.is_absolute() or (Path.cwd() / base).exists():
        return base / p
    if (REPO_ROOT / base).exists():
        return REPO_ROOT / base / p
    return base / p


def nearest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """' did you mean X?' or '' (for messages)."""
    near = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean {near[0]!r}?" if near else ""
