"""Print a Markdown table of fine-tuning results from their ``metrics.json`` files.

    python -m training.report runs/evidence/*/metrics.json

One row per run: the run folder, task, dataset, starting weights, the task's headline numbers
(top-1; water IoU/F1 beside Otsu's; COCO AP and AP50), and the train/test sizes. Every number
comes from a file a run wrote; nothing is typed in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COLUMNS = ["run", "task", "data", "init", "metric", "value", "Otsu", "train", "test"]


def _f(v: Any) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def row(path: Path) -> list[str]:
    m = json.loads(path.read_text())
    cfg_path = path.parent / "config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    data = cfg.get("data", {})
    name = data.get("format", "?")
    if data.get("shots_per_class"):
        name += f" {data['shots_per_class']}-shot"
    init = "scratch" if not m.get("init") else "/".join(Path(m["init"]).parts[-2:])
    task = m["task"]
    if task == "classification":
        metric, value, otsu, test = "top-1 %", _f(m["top1"]), "", m["samples"]
    elif task == "segmentation":
        b = m.get("baseline_otsu", {})
        metric = f"{m.get('positive_class', 'class 1')} IoU / F1 %"
        value = f"{_f(m.get('water_iou'))} / {_f(m.get('water_f1'))}"
        otsu = f"{_f(b.get('water_iou'))} / {_f(b.get('water_f1'))}" if b else ""
        test = f"{m['pixels']} px"
    else:
        metric, value, otsu = "AP / AP50 %", f"{_f(m['AP'])} / {_f(m['AP50'])}", ""
        test = f"{m['images']} img, {m['ground_truth_boxes']} boxes"
    run = path.parent.name
    return [run, task, name, init, metric, value, otsu, str(m.get("train_samples", "")), str(test)]


def table(paths: list[Path]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(p)) + " |" for p in paths]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    paths = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        raise SystemExit("usage: python -m training.report RUN/metrics.json ...")
    print(table(paths))


if __name__ == "__main__":
    main()
