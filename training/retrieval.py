"""SAR-to-optical retrieval on held-out co-registered pairs: does SARC align the encoder?

    python -m sarmae_train.retrieval --config pretrain_sarc_pairs.yaml \\
        --model before=random:runs/sarc_pairs/checkpoint.safetensors \\
        --model after=runs/sarc_pairs/checkpoint.safetensors --out runs/sarc_pairs/retrieval.json

The config's ``paired_folders`` source names the pairs; its ``max_items`` first pairs are the
training ones, the rest are held out. Each held-out pair is cut into a grid of crops of the
model's window (SAR and optical alike). A SAR crop's features are its patch tokens (whole
image, no masking) through the SARC projection; an optical crop's are the frozen teacher's grid
on the same patches. Two similarities rank, for every SAR crop, all optical crops: ``patch``, the
mean over patch positions of the cosine between the SAR and optical feature at that position
(what SARC trains), and ``global``, the cosine of the crop-averaged features. Top-1 and top-5
are how often its own optical crop comes first / among the first five (chance: 1 / crops and
5 / crops). ``random:CHECKPOINT`` is the same model freshly initialised (seed 0):
the score before pretraining.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sarmae_core.models import create_model, load_checkpoint

from .config import PretrainRunConfig, load_config
from .config_loader import resolve_data_path
from .data import folder_pairs
from .imageio import read_image, read_rgb, resize, to_model_units


def held_out_crops(cfg: PretrainRunConfig, window: int, model_units: str) -> tuple:
    """(SAR [K, C, w, w] in model units, optical [K, 3, w, w] in 0..1, names) of the held-out
    pairs of the config's paired_folders source, each cut into window-sized crops."""
    source = next((s for s in cfg.data.sources if s.kind == "paired_folders"), None)
    if source is None or source.max_items is None:
        raise SystemExit(
            "the config needs a paired_folders source whose max_items leaves pairs out"
        )
    pairs = folder_pairs(resolve_data_path(cfg.data.root, source.sar),
                         resolve_data_path(cfg.data.root, source.optical))  # fmt: skip
    held = [(s, o) for s, o in pairs[source.max_items :] if o is not None]
    if not held:
        raise SystemExit("no held-out pair: every pair is within max_items")
    sar_crops, opt_crops, names = [], [], []
    for sar_path, opt_path in held:
        sar = to_model_units(read_image(sar_path, source.bands), source.units, model_units)
        opt = read_rgb(opt_path)
        if opt.shape[-2:] != sar.shape[-2:]:
            opt = resize(opt, sar.shape[-2:])
        h, w = sar.shape[-2:]
        for r in range(0, h - window + 1, window):
            for c in range(0, w - window + 1, window):
                sar_crops.append(sar[:, r : r + window, c : c + window])
                opt_crops.append(opt[:, r : r + window, c : c + window])
                names.append(f"{sar_path.name} r{r} c{c}")
    return (torch.from_numpy(np.stack(sar_crops)).float(),
            torch.from_numpy(np.stack(opt_crops)).float(), names)  # fmt: skip


def patch_features(
    model: Any, sar: torch.Tensor, optical: torch.Tensor, batch: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAR (through the SARC projection) and teacher features per patch, [K, L, Dt] each."""
    model.eval()
    p = model.config.patch_size
    grid = (sar.shape[-2] // p, sar.shape[-1] // p)
    s_out, o_out = [], []
    with torch.no_grad():
        for i in range(0, len(sar), batch):
            tokens = model.encoder.forward_features(model.normalize(sar[i : i + batch]))[:, 1:]
            s_out.append(model.sarc.proj(tokens))
            teacher = model.sarc.teacher.patch_grid(optical[i : i + batch], grid)
            o_out.append(teacher.flatten(2).transpose(1, 2))
    return torch.cat(s_out), torch.cat(o_out)


def retrieval(s: torch.Tensor, o: torch.Tensor) -> dict[str, float]:
    """Top-1 / top-5 of each SAR crop's own optical crop among all (cosine of embeddings
    ``s``, ``o`` [K, D], L2-normalised), and the median rank."""
    return retrieval_from(s @ o.T)


def retrieval_from(sim: torch.Tensor) -> dict[str, float]:
    """:func:`retrieval` from a similarity matrix [K SAR crops, K optical crops]."""
    rank = (sim > sim.diag().unsqueeze(1)).sum(dim=1)  # 0 = its own crop comes first
    return {
        "top1": float((rank < 1).float().mean()),
        "top5": float((rank < 5).float().mean()),
        "median_rank": float(rank.float().median() + 1),
        "crops": len(sim),
    }


def load(spec: str) -> Any:
    if spec.startswith("random:"):
        trained = load_checkpoint(spec.removeprefix("random:"))
        torch.manual_seed(0)
        c = trained.config
        return create_model(c.preset, **{k: v for k, v in vars(c).items() if k != "preset"})
    return load_checkpoint(spec)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="pretraining config with the pairs")
    ap.add_argument("--model", action="append", required=True, metavar="LABEL=CHECKPOINT",
                    help="a pretraining checkpoint, or random:CHECKPOINT")  # fmt: skip
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("overrides", nargs="*", help="config key=value overrides (data.root=...)")
    args = ap.parse_args(argv)
    cfg = load_config(PretrainRunConfig, args.config, args.overrides)
    results: dict[str, Any] = {}
    crops = None
    for item in args.model:
        label, _, spec = item.partition("=")
        model = load(spec)
        if model.sarc is None:
            raise SystemExit(f"{spec} has no SARC head: retrieval needs one")
        if crops is None:
            crops = held_out_crops(cfg, model.config.img_size, model.config.data.units)
        s, o = patch_features(model, crops[0], crops[1])
        patch = torch.einsum("ipd,jpd->ij", F.normalize(s, dim=2), F.normalize(o, dim=2))
        results[label] = {
            "patch": retrieval_from(patch / s.shape[1]),
            "global": retrieval(F.normalize(s.mean(1), dim=1), F.normalize(o.mean(1), dim=1)),
            "model": spec,
        }
    n = results[next(iter(results))]["patch"]["crops"]
    print(f"SAR -> optical retrieval among {n} held-out crops (chance: top-1 {1 / n:.3f}, "
          f"top-5 {min(5 / n, 1):.3f})")  # fmt: skip
    print("| model | similarity | top-1 | top-5 | median rank |")
    print("|---|---|---|---|---|")
    for label, r in results.items():
        for kind in ("patch", "global"):
            k = r[kind]
            print(f"| {label} | {kind} | {k['top1']:.3f} | {k['top5']:.3f} | "
                  f"{k['median_rank']:.0f} |")  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"held_out": crops[2], "models": results}, indent=2))


if __name__ == "__main__":
    main()
