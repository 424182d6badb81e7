"""``python -m sarmae_train.retrieval``: SAR-to-optical retrieval on the held-out Volkov pairs."""

from __future__ import annotations

import json

import torch

from sarmae_train.retrieval import main, retrieval

from .conftest import needs_shared_data


def test_retrieval_scores_are_ranks_of_the_own_crop():
    s = torch.eye(6)
    assert retrieval(s, s) == {"top1": 1.0, "top5": 1.0, "median_rank": 1.0, "crops": 6}
    shifted = torch.roll(torch.eye(6), 1, dims=0)  # every SAR crop closest to another's
    r = retrieval(torch.eye(6), shifted)
    assert r["top1"] == 0.0 and r["median_rank"] > 1


@needs_shared_data
def test_held_out_pairs_are_the_ones_training_leaves_out(tmp_path, capsys):
    from sarmae_core.models import save_checkpoint
    from sarmae_train.config import PretrainRunConfig, load_config
    from sarmae_train.pretrain import build_pretrain_model

    cfg = load_config(PretrainRunConfig, "pretrain_sarc_pairs.yaml", [])
    torch.manual_seed(0)
    ckpt = save_checkpoint(build_pretrain_model(cfg), tmp_path / "init.safetensors")
    out = tmp_path / "retrieval.json"
    main(["--config", "pretrain_sarc_pairs.yaml", "--model", f"before=random:{ckpt}",
          "--model", f"init={ckpt}", "--out", str(out)])  # fmt: skip
    r = json.loads(out.read_text())
    # 21 pairs, 17 for training: 4 held out, 8 x 8 crops of 128 px each
    assert len(r["held_out"]) == 256 and len({n.split()[0] for n in r["held_out"]}) == 4
    before, init = r["models"]["before"], r["models"]["init"]
    assert before["patch"] == init["patch"] and before["global"] == init["global"]  # same weights
    assert 0 <= init["patch"]["top5"] <= 1 and init["patch"]["crops"] == 256
    printed = capsys.readouterr().out
    assert "chance: top-1 0.004" in printed and "| before |" in printed
