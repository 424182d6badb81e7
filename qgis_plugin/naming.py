"""Names of result layers and the sentences that report a run (pure, no QGIS)."""

from __future__ import annotations

#: Input names are long (Sentinel-1 product names run to 70 characters); the layer panel is not.
MAX_INPUT_CHARS = 40


def short(text: str, limit: int = MAX_INPUT_CHARS) -> str:
    """``text`` cut in the middle to ``limit`` characters, keeping both ends readable."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return f"{text[:head]}…{text[-(limit - 1 - head) :]}"


def layer_name(kind: str, model_label: str, input_name: str) -> str:
    """E.g. ``Water [water] S1A_IW_…_VV_db``: what it is, which model, on which input."""
    return f"{kind} [{model_label}] {short(input_name)}"


def format_area_km2(km2: float | None) -> str:
    """Area with the precision a reader needs: 3 significant figures, never scientific."""
    if km2 is None:
        return "unknown area"
    if km2 >= 100:
        return f"{km2:,.0f} km²"
    if km2 >= 1:
        return f"{km2:.2f} km²"
    return f"{km2:.3f} km²"


def format_seconds(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 1 else f"{seconds:.1f} s"


def water_message(
    area_km2: float | None, input_name: str, model_label: str, seconds: float, kind: str = "Water"
) -> str:
    """``Water: 3.95 km² in …`` (``kind`` ``Flood`` for new flood between two dates)."""
    return (
        f"{kind}: {format_area_km2(area_km2)} in {short(input_name)} "
        f"(model {model_label}, {format_seconds(seconds)})"
    )


def ships_message(count: int | None, input_name: str, model_label: str, seconds: float) -> str:
    n = count or 0
    noun = "ship" if n == 1 else "ships"
    where = f"{short(input_name)} (model {model_label}, {format_seconds(seconds)})"
    return f"{n} {noun} detected in {where}"
