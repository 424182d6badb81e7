"""Print a Markdown table of fine-tuning results from their ``metrics.json`` files.

    python -m sarmae_train.report runs/evidence/*/metrics.json

One row per run: the run folder, task, dataset, starting weights, the task's headline numbers
(top-1; water IoU/F1 beside Otsu's; COCO AP and AP50), and the train/test sizes. Every number
comes from a file a run wrote; nothing is typed in.

Runs that differ only by seed (folders named ``NAME-s0``, ``NAME-s1``, ...) are summarised in one
row: the mean and the sample standard deviation over the seeds, and how many there were
(``--per-run`` lists them one by one instead).

Runs named ``TASK-INIT-sSEED`` (the evidence recipe's ``mstar40-sare-s3``) are also compared
pairwise, seed by seed, in a second table: for each task and each two starts, the mean and
standard deviation of the per-seed difference, its 95 % confidence interval (Student's t on the
paired differences: the same seed draws the same labelled chips and the same head, so pairing
removes that part of the spread) and the paired t-test's p-value. A difference "exceeds the seed
spread" when its interval excludes zero. Each task tests every pair of starts at once (ten pairs
for five starts), so one p below 0.05 in ten is expected by chance alone: the table also gives
each p adjusted for the pairs of its task (Holm's step-down method), and a difference holds
"after Holm" when that adjusted p is below 0.05.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

COLUMNS = ["run", "task", "data", "init", "metric", "value", "Otsu", "train", "test"]


def _f(v: Any) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def not_scored(metrics: dict[str, Any]) -> bool:
    """True for the metrics of a final model trained on all its data (``data.test_split:
    null``): they hold no scores, only what was trained."""
    return "split" in metrics and metrics["split"] is None


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
    if not_scored(m):
        metric, value, otsu, test = "not scored (trained on all data)", "", "", ""
    elif task == "classification":
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


def _split_run(name: str) -> tuple[str, str] | None:
    """``mstar40-sare`` -> (``mstar40``, ``sare``): the task and the start of a seeded run."""
    task, sep, init = name.rpartition("-")
    return (task, init) if sep and task else None


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of p-values tested together (a family): the k-th smallest is
    multiplied by (m - k + 1), kept at least as large as the one before it and at most 1. It
    controls the chance of any false "yes" in the family without assuming the tests independent.
    """
    m = len(pvalues)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def paired(paths: list[Path]) -> str:
    """Pairwise, seed-by-seed differences of the headline metric between starts of one task.

    Only seeds both runs have are used; a pair with fewer than two common seeds is left out.
    Returns "" when no pair has two.
    """
    from scipy import stats

    # task -> init -> seed -> value (pairs are listed with scratch first, then as they came)
    scores: dict[str, dict[str, dict[int, float]]] = {}
    for p in paths:
        match = _SEED.match(p.parent.name)
        split = _split_run(match["name"]) if match else None
        if split is None:
            continue
        value = _headline(json.loads(p.read_text()))
        if value is not None:
            scores.setdefault(split[0], {}).setdefault(split[1], {})[int(match["seed"])] = value
    head = [
        "task",
        "A",
        "B",
        "seeds",
        "B − A (mean ± std)",
        "95 % CI",
        "p (paired t)",
        "exceeds seed spread",
        "p, Holm (pairs of the task)",
        "after Holm",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task, inits in scores.items():
        # the baseline first, so that each difference reads as a gain over training from scratch
        names = sorted(inits, key=lambda n: n != "scratch")
        rows: list[tuple[str, float | None]] = []
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                common = sorted(set(inits[a]) & set(inits[b]))
                if len(common) < 2:
                    continue
                d = [100 * (inits[b][s] - inits[a][s]) for s in common]
                mean, std = statistics.fmean(d), statistics.stdev(d)
                half = stats.t.ppf(0.975, len(d) - 1) * std / len(d) ** 0.5
                # identical differences: no spread, no test (its pair stays in the family as
                # one that shows nothing, p = 1, below)
                pvalue = None
                if std > 0:
                    pvalue = float(
                        stats.ttest_rel(
                            [inits[b][s] for s in common], [inits[a][s] for s in common]
                        ).pvalue
                    )
                p_text = "n/a" if pvalue is None else f"{pvalue:.3f}"
                verdict = "yes" if (mean - half > 0 or mean + half < 0) else "no"
                rows.append(
                    (
                        f"| {task} | {a} | {b} | {len(d)} | {mean:+.2f} ± {std:.2f} | "
                        f"[{mean - half:+.2f}, {mean + half:+.2f}] | {p_text} | {verdict} |",
                        pvalue,
                    )
                )
        adjusted = holm([1.0 if pv is None else pv for _, pv in rows])
        for (row, pv), adj in zip(rows, adjusted, strict=True):
            adj_text = "n/a" if pv is None else f"{adj:.3f}"
            lines.append(f"{row} {adj_text} | {'yes' if pv is not None and adj < 0.05 else 'no'} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics", nargs="+", type=Path, help="each run's metrics.json")
    ap.add_argument("--per-run", action="store_true", help="one row per run, seeds not summarised")
    args = ap.parse_args(argv)
    missing = [str(p) for p in args.metrics if not p.is_file()]
    if missing:
        ap.error(f"no such metrics file: {', '.join(missing)} (give each run's metrics.json)")
    print(table(args.metrics, per_run=args.per_run))
    pairs = paired(args.metrics)
    if pairs:
        print("\nPaired by seed (percentage points):\n")
        print(pairs)


if __name__ == "__main__":
    main()
