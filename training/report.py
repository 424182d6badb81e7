"""Print a Markdown table of fine-tuning results from their ``metrics.json`` files.

    python -m sarmae_train.report runs/evidence/*/metrics.json

One row per run: the run folder, task, dataset, starting weights, the task's headline numbers
(top-1; water IoU/F1 beside Otsu's; COCO AP and AP50), and the train/test sizes. Every number
comes from a file a run wrote; nothing is typed in.

Runs that differ only by seed (folders named ``NAME-s0``, ``NAME-s1``, ...) are summarised in one
row: the mean and the sample standard deviation over the seeds, and how many there were
(``--per-run`` lists them one by one instead).
"""

from __future__ import annotations

import json
import re
import statistics
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
    # `sarmae-train evaluate` records the data it scored; a fine-tuning run's config says it
    data = m.get("data") or cfg.get("data", {})
    name = data.get("format", "?")
    if data.get("shots_per_class"):
        name += f" {data['shots_per_class']}-shot"
    if m.get("init"):
        init = "/".join(Path(m["init"]).parts[-2:])
    elif "checkpoint" in m:  # an evaluation of a fine-tuned model: the model is the start
        init = "model " + "/".join(Path(m["checkpoint"]).parts[-2:])
    else:
        init = "scratch"
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
    run = path.parent.name if path.name == "metrics.json" else f"{path.parent.name}: {path.stem}"
    return [run, task, name, init, metric, value, otsu, str(m.get("train_samples", "")), str(test)]


_SEED = re.compile(r"^(?P<name>.+)-s(?P<seed>\d+)$")


def _headline(m: dict[str, Any]) -> float | None:
    """The number seeds are averaged on: top-1, water IoU or AP50."""
    key = {"classification": "top1", "segmentation": "water_iou"}.get(m["task"], "AP50")
    return m.get(key)


def _seed_row(name: str, paths: list[Path]) -> list[str]:
    """One row for the seeds of a run: mean +- sample std of the headline metric (in %)."""
    first = row(paths[0])
    metrics = [json.loads(p.read_text()) for p in paths]
    values = [v for v in map(_headline, metrics) if v is not None]
    n = len(paths)
    first[0] = f"{name} ({n} seed{'s' if n != 1 else ''})"
    if len(values) == n and n > 1:
        mean, std = 100 * statistics.fmean(values), 100 * statistics.stdev(values)
        first[5] = f"{mean:.2f} ± {std:.2f}"
    task = metrics[0]["task"]
    first[4] = {"classification": "top-1 %", "segmentation": "water IoU %"}.get(task, "AP50 %")
    first[6] = ""
    return first


def table(paths: list[Path], per_run: bool = False) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    groups: dict[str, list[Path]] = {}
    for p in paths:
        match = None if per_run else _SEED.match(p.parent.name)
        groups.setdefault(match["name"] if match else str(p), []).append(p)
    for key, members in groups.items():
        if len(members) == 1 and str(members[0]) == key:
            cells = row(members[0])
        else:
            cells = _seed_row(key, members)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    per_run = "--per-run" in args
    paths = [Path(a) for a in args if a != "--per-run"]
    if not paths:
        raise SystemExit("usage: python -m sarmae_train.report [--per-run] RUN/metrics.json ...")
    print(table(paths, per_run=per_run))


if __name__ == "__main__":
    main()
