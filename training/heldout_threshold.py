"""The water probability threshold a recipe ships, chosen on scenes its models never saw.

    python -m sarmae_train.heldout_threshold runs/bundled/water-without-*/heldout.json

Each file is a ``python -m sarmae_train.heldout`` result on one held-out scene, scored by a model
of the same recipe trained without that scene (leave one scene out). The threshold with the best
mean water IoU over the scenes (each scene counts once, whatever its size) is printed on stdout,
for ``sarmae export --threshold``; the table behind it goes to stderr. The final model, trained on
every scene, then keeps a choice made by cross-validation and never on its own test data. A tie
keeps the threshold nearer 0.5, where a calibrated probability puts it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _curve(result: dict[str, Any], label: str) -> dict[float, float]:
    """{threshold: water IoU} of model ``label`` in one held-out result."""
    if label not in result.get("models", {}):
        raise ValueError(f"{result.get('split', 'a result')} has no model {label!r}")
    at = result["models"][label]["iou_at_threshold"]
    return {float(t): v for t, v in at.items() if v is not None}


def pick_threshold(results: list[dict[str, Any]], label: str = "water") -> tuple[float, dict]:
    """(best threshold, {threshold: mean IoU}) over the held-out scenes of ``results``.

    Raises:
        ValueError: no results, a result without the model ``label``, or no threshold that
            every scene was scored at.
    """
    if not results:
        raise ValueError("no held-out results to choose a threshold from")
    curves = [_curve(r, label) for r in results]
    common = set.intersection(*(set(c) for c in curves))
    if not common:
        raise ValueError("the held-out results share no scored threshold")
    mean = {t: sum(c[t] for c in curves) / len(curves) for t in sorted(common)}
    best = max(mean, key=lambda t: (round(mean[t], 6), -abs(t - 0.5)))
    return best, mean


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="heldout.json of each left-out scene")
    ap.add_argument("--model", default="water", help="the model's label in those files")
    args = ap.parse_args(argv)
    results = [json.loads(Path(p).read_text()) for p in args.results]
    try:
        best, mean = pick_threshold(results, args.model)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    curves = [_curve(r, args.model) for r in results]
    for t, v in mean.items():
        scenes = ", ".join(f"{100 * c[t]:.1f}" for c in curves)
        mark = "  <- chosen" if t == best else ""
        print(f"threshold {t:g}: mean water IoU {100 * v:.1f} ({scenes}){mark}", file=sys.stderr)
    print(f"{best:g}")


if __name__ == "__main__":
    main()
