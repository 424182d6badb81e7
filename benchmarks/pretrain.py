"""Pretraining step throughput and peak memory on this machine, with SARE and SARC on.

    python benchmarks/pretrain.py [--presets sarmae_vit_tiny sarmae_vit_base] [--batch 8]
    python benchmarks/pretrain.py --ratios [--preset sarmae_vit_tiny] [--batch 16] [--threads 2]

``--ratios``: images/s of plain MAE, MAE + SARE, full SARMAE with the teacher run every step and
full SARMAE with its features cached (steady state: every crop seen before, as from the second
epoch on), in one process, the variants taking turns round after round (a noisy neighbour hits
all alike; each variant's best round is kept), and each one's ratio to plain MAE.

Each preset runs in its own subprocess so that its peak resident memory is its own. A step is
forward + backward + AdamW update at 224 px with SARE (p=0.5) and SARC (EfficientNet-Lite0
teacher, every sample paired); the teacher's share is measured with hooks around its forward.
Pixel values are synthetic dB noise: throughput does not depend on image content.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def run_one(preset: str, batch: int, steps: int, threads: int) -> dict:
    import torch

    from sarmae_core.models import create_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(preset, sarc={"weight": 0.1, "teacher": {"name": "efficientnet_lite0"}})
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    teacher = model.sarc.teacher
    teacher_time = [0.0]
    start = [0.0]
    teacher.register_forward_pre_hook(lambda *_: start.__setitem__(0, time.perf_counter()))
    teacher.register_forward_hook(
        lambda *_: teacher_time.__setitem__(0, teacher_time[0] + time.perf_counter() - start[0])
    )
    sar = -12 + 5 * torch.randn(batch, 1, 224, 224)
    optical = torch.rand(batch, 3, 224, 224)
    paired = torch.ones(batch, dtype=torch.bool)

    def step() -> None:
        out = model(sar, optical, paired)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    step()  # warm-up: allocator, kernels
    teacher_time[0] = 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    wall = time.perf_counter() - t0
    return {
        "preset": preset,
        "batch": batch,
        "steps": steps,
        "threads": threads,
        "images_per_s": batch * steps / wall,
        "s_per_step": wall / steps,
        "teacher_share": teacher_time[0] / wall,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }


def ratios(preset: str, batch: int, steps: int, rounds: int, threads: int) -> None:
    import torch

    from sarmae_core.models import create_model
    from sarmae_core.models.mae import TeacherFeatureCache
    from sarmae_core.speckle import SpeckleConfig

    torch.set_num_threads(threads)
    sarc = {"weight": 0.1, "teacher": {"name": "efficientnet_lite0"}}
    off = SpeckleConfig(enabled=False)
    builds = {
        "plain MAE": lambda: create_model(preset, speckle=off),
        "MAE + SARE": lambda: create_model(preset),
        "SARMAE (SARE + SARC), teacher every step": lambda: create_model(preset, sarc=sarc),
        "SARMAE, teacher features cached": lambda: create_model(preset, sarc=sarc),
    }
    g = torch.Generator().manual_seed(0)
    sar = -12 + 5 * torch.randn(batch, 1, 224, 224, generator=g)
    optical = torch.rand(batch, 3, 224, 224, generator=g)
    paired = torch.ones(batch, dtype=torch.bool)
    keys = [f"optical {i}" for i in range(batch)]
    runs = {}
    for name, build in builds.items():
        torch.manual_seed(0)
        model = build().train()
        if "cached" in name:
            model.sarc.cache = TeacherFeatureCache(1 << 30)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        runs[name] = (model, opt, model.sarc is not None)

    def step(name: str) -> None:
        model, opt, with_sarc = runs[name]
        out = model(sar, optical if with_sarc else None, paired if with_sarc else None,
                    optical_keys=keys if with_sarc else None)  # fmt: skip
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    for name in runs:  # warm-up: allocator, kernels, the cache's first (missing) pass
        step(name)
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name in runs:
            t0 = time.perf_counter()
            for _ in range(steps):
                step(name)
            best[name] = min(best[name], (time.perf_counter() - t0) / steps)
    base = batch / best["plain MAE"]
    print(f"{preset}, 224 px, batch {batch}, {threads} threads, best of {rounds} rounds of "
          f"{steps} steps, synthetic dB input")  # fmt: skip
    print(f"| {'variant':42s} | images/s | vs plain MAE |")
    print(f"|{'-' * 44}|----------|--------------|")
    for name, s_per_step in best.items():
        ips = batch / s_per_step
        print(f"| {name:42s} | {ips:8.1f} | {ips / base:12.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["sarmae_vit_tiny", "sarmae_vit_base"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--ratios", action="store_true",
                    help="images/s of plain MAE, +SARE, +SARC, +SARC cached; ratios")  # fmt: skip
    ap.add_argument("--preset", default="sarmae_vit_tiny", help="--ratios: the model")
    ap.add_argument("--rounds", type=int, default=3, help="--ratios: rounds of steps")
    args = ap.parse_args()
    import os

    threads = args.threads or os.cpu_count() or 1
    if args.ratios:
        ratios(args.preset, args.batch, args.steps, args.rounds, threads)
        return
    if args.one:
        print(json.dumps(run_one(args.one, args.batch, args.steps, threads)))
        return
    print(
        f"SARMAE pretraining step, 224 px, batch {args.batch}, SARE + SARC on, "
        f"CPU, {threads} threads"
    )
    header = ("preset", "params M", "img/s", "s/step", "teacher", "peak RSS")
    print("".join(f"{h:<18}" if i == 0 else f"{h:>10}" for i, h in enumerate(header)))
    for preset in args.presets:
        cmd = [sys.executable, __file__, "--one", preset, "--batch", str(args.batch),
               "--steps", str(args.steps), "--threads", str(threads)]  # fmt: skip
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(
            f"{r['preset']:<18}{r['params_m']:>10.1f}{r['images_per_s']:>10.2f}"
            f"{r['s_per_step']:>10.2f}{100 * r['teacher_share']:>9.1f}%"
            f"{r['peak_rss_mib']:>6.0f} MiB"
        )


if __name__ == "__main__":
    main()
