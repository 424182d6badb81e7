"""``python -m sarmae_train.report``: the README table from the runs' metrics.json files."""

from __future__ import annotations

import json

import pytest

from sarmae_train.report import holm, main, table


def _run(folder, top1, shots=40, init="runs/evidence/pretrain-sare/checkpoint.safetensors"):
    folder.mkdir(parents=True)
    m = {
        "task": "classification",
        "top1": top1,
        "samples": 2425,
        "init": init,
        "train_samples": 400,
    }
    (folder / "metrics.json").write_text(json.dumps(m))
    (folder / "config.json").write_text(
        json.dumps({"data": {"format": "mstar", "shots_per_class": shots}})
    )
    return folder / "metrics.json"


def test_seeds_are_one_row_with_mean_and_sample_std(tmp_path, capsys):
    seeds = [_run(tmp_path / f"mstar40-sare-s{i}", v) for i, v in enumerate([0.80, 0.84, 0.82])]
    single = _run(tmp_path / "mstar-scratch", 0.5, shots=None, init=None)
    out = table([*seeds, single])
    lines = out.splitlines()
    assert len(lines) == 4
    assert "mstar40-sare (3 seeds)" in lines[2] and "82.00 ± 2.00" in lines[2]
    assert "pretrain-sare/checkpoint.safetensors" in lines[2] and "mstar 40-shot" in lines[2]
    assert "| mstar-scratch | classification | mstar | scratch | top-1 % | 50.00 |" in lines[3]
    main(["--per-run", *map(str, seeds)])
    assert len(capsys.readouterr().out.splitlines()) == 5


def test_starts_are_compared_seed_by_seed(tmp_path, capsys):
    # sare beats mae by 1.0-1.4 points on every seed although the seeds' own spread is ~4
    # points: paired, the difference is clear; "noise" is not; "old" shares one seed with the
    # others, too few for a row. Scratch, the baseline, is A in its pairs though listed last.
    mae = [0.70, 0.74, 0.78, 0.66]
    sare = [0.71, 0.754, 0.792, 0.672]
    noise = [0.71, 0.73, 0.79, 0.65]
    paths = [_run(tmp_path / f"mstar40-mae-s{i}", v) for i, v in enumerate(mae)]
    paths += [_run(tmp_path / f"mstar40-sare-s{i}", v) for i, v in enumerate(sare)]
    paths += [_run(tmp_path / f"mstar40-noise-s{i}", v) for i, v in enumerate(noise)]
    paths += [_run(tmp_path / f"mstar40-old-s{i}", 0.5) for i in (0, 9)]
    paths += [_run(tmp_path / f"mstar40-scratch-s{i}", 0.6, init=None) for i in range(4)]
    main([str(p) for p in paths])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| mstar40 |")]
    assert len(rows) == 6  # every pair of mae, sare, noise and scratch; none with "old"
    assert all("| old |" not in r for r in rows)
    assert [r.split(" | ")[1] for r in rows[:3]] == ["scratch"] * 3
    mae_sare = next(r for r in rows if "| mae | sare |" in r)
    assert "| 4 | +1.20 ± 0.16 |" in mae_sare and mae_sare.endswith("| yes |")
    mae_noise = next(r for r in rows if "| mae | noise |" in r)
    assert mae_noise.endswith("| no |")
    scratch_mae = next(r for r in rows if "| scratch | mae |" in r)
    assert "| 4 | +12.00 ± 5.16 |" in scratch_mae


def test_holm_adjusts_each_p_for_the_pairs_tested_together():
    # sorted 0.01, 0.02, 0.04 -> 3 x 0.01, 2 x 0.02, 1 x 0.04, kept non-decreasing
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []


def test_a_difference_that_exceeds_the_spread_alone_may_not_survive_many_pairs(tmp_path, capsys):
    # mae beats scratch clearly, "lucky" beats it weakly (p about 0.03 alone); with four starts
    # there are six pairs, and the weak one does not hold after Holm while the clear one does
    scratch = [0.60, 0.62, 0.58, 0.61, 0.59]
    mae = [0.70, 0.72, 0.69, 0.71, 0.69]
    lucky = [0.61, 0.64, 0.58, 0.63, 0.60]
    flat = [0.60, 0.62, 0.58, 0.61, 0.59]
    paths = [_run(tmp_path / f"mstar40-scratch-s{i}", v, init=None) for i, v in enumerate(scratch)]
    paths += [_run(tmp_path / f"mstar40-mae-s{i}", v) for i, v in enumerate(mae)]
    paths += [_run(tmp_path / f"mstar40-lucky-s{i}", v) for i, v in enumerate(lucky)]
    paths += [_run(tmp_path / f"mstar40-flat-s{i}", v) for i, v in enumerate(flat)]
    main([str(p) for p in paths])
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| mstar40 |")]
    assert len(rows) == 6
    cells = {tuple(r.split(" | ")[1:3]): r.strip(" |").split(" | ") for r in rows}
    assert cells[("scratch", "mae")][-3:] == ["yes", cells[("scratch", "mae")][-2], "yes"]
    lucky_row = cells[("scratch", "lucky")]
    assert float(lucky_row[6]) < 0.05 and lucky_row[7] == "yes"  # alone: beyond the spread
    assert float(lucky_row[8]) >= 0.05 and lucky_row[9] == "no"  # among six pairs: not
    flat_row = cells[("scratch", "flat")]  # identical scores: no test at all
    assert flat_row[6] == "n/a" and flat_row[8] == "n/a" and flat_row[9] == "no"


def test_report_says_what_is_wrong_with_its_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "nowhere" / "metrics.json")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no such metrics file" in err and "nowhere" in err
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "metrics.json" in capsys.readouterr().out
