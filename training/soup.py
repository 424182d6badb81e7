"""A uniform model soup: the weights of fine-tuned models from one pretrained encoder, averaged.

    python -m sarmae_train.soup runs/s*/model.safetensors -o runs/soup/model.safetensors

Fine-tunes of one recipe that differ only in their seed can land in one basin of the loss when they
start from the same pretrained encoder, and their average is often better than each of them and
steadier on shifted data (Wortsman et al., "Model soups", ICML 2022). On a held-out scene whose
score moves by several points from seed to seed (the water recipe's Nebraska fold), the soup
would trade that lottery for one model at the cost of one model at inference. Measured there,
it did not: three 20-epoch runs from one start (28.5, 26.6, 26.7 water IoU) averaged to 24.4
(training/README.md, "Water without layer decay"), so no bundled model is a soup. It is only
meaningful for models of one recipe from one pretrained init: the inputs must have the same
kind, model config, task header and tensor names and shapes, and are refused otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from sarmae_core.errors import SarmaeError
from sarmae_core.files import atomic_path
from sarmae_core.models.checkpoint import CONFIG_KEY, read_safetensors

# header entries that may differ between the ingredients: what a run measured of itself, which
# the soup does not inherit
_PER_RUN_KEYS = ("metrics", "soup_of")


class SoupError(SarmaeError, ValueError):
    """The checkpoints cannot be averaged into one model."""


def _comparable(header: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in header.items() if k not in _PER_RUN_KEYS}


def soup(paths: list[Path]) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(header, tensors) of the uniform average of the checkpoints at ``paths``.

    Floating-point tensors are averaged in float64 and stored in their own dtype; any other
    tensor (counters, integer buffers) must be equal in every ingredient.

    Raises:
        SoupError: fewer than two checkpoints, or checkpoints of different models.
        CheckpointError: a file that is not one of our checkpoints.
    """
    if len(paths) < 2:
        raise SoupError("a soup needs two or more fine-tuned checkpoints")
    first_header, first = read_safetensors(paths[0])
    if CONFIG_KEY not in first_header:
        raise SoupError(f"{paths[0]} has no sarmae model config in its header")
    base = _comparable(first_header)
    sums = {k: v.to(torch.float64) if v.is_floating_point() else v for k, v in first.items()}
    for path in paths[1:]:
        header, tensors = read_safetensors(path)
        this = _comparable(header)
        if this != base:
            differ = sorted(k for k in this.keys() | base.keys() if this.get(k) != base.get(k))
            raise SoupError(
                f"{path} is not the same model as {paths[0]} (header differs in {differ}); "
                "average only fine-tunes of one recipe"
            )
        if set(tensors) != set(first):
            raise SoupError(f"{path} has other tensors than {paths[0]}")
        for k, v in tensors.items():
            if v.shape != first[k].shape:
                raise SoupError(f"{path}: {k} is {tuple(v.shape)}, not {tuple(first[k].shape)}")
            if v.is_floating_point():
                sums[k] += v.to(torch.float64)
            elif not torch.equal(v, first[k]):
                raise SoupError(f"{path}: the non-float tensor {k} differs from {paths[0]}")
    n = len(paths)
    tensors = {
        k: (s / n).to(first[k].dtype).contiguous() if first[k].is_floating_point() else s
        for k, s in sums.items()
    }
    header = {k: v for k, v in first_header.items() if k not in _PER_RUN_KEYS}
    header["soup_of"] = json.dumps([str(p) for p in paths])
    return header, tensors


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", type=Path, help="model.safetensors of each run")
    ap.add_argument("-o", "--out", type=Path, required=True, help="the soup's model.safetensors")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = ap.parse_args(argv)
    if args.out.exists() and not args.overwrite:
        sys.exit(f"error: {args.out} exists; pass --overwrite to replace it")
    try:
        header, tensors = soup(args.checkpoints)
    except ValueError as exc:  # SoupError and CheckpointError
        sys.exit(f"error: {exc}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    print(f"soup of {len(args.checkpoints)} models: {args.out}")


if __name__ == "__main__":
    main()
