"""``python -m sarmae_train.report``: the README table from the runs' metrics.json files."""

from __future__ import annotations

import json

from sarmae_train.report import main, table


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
