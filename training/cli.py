"""``sarmae-train``: pretrain SARMAE, fine-tune task models, evaluate them.

Every command reads a YAML config (``--config``; shipped ones in ``training/configs``) and takes
``key=value`` overrides after it (``optim.lr=1e-4 data.root=/data``). ``pretrain`` also takes
data paths directly (files, folders, globs, a SAR-1M root), and the flags of its first version
(``--preset``, ``--steps`` ...), which are shorthands for overrides.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from sarmae_core.cli import SarmaeGroup, log_level, quiet_option, verbose_option
from sarmae_core.errors import SarmaeError


@click.group(cls=SarmaeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@verbose_option
@quiet_option
def main(verbose: int, quiet: bool) -> None:
    """Train SARMAE models on SAR data."""
    import os

    level = log_level(logging.INFO, verbose, quiet)
    rank = os.environ.get("RANK")
    fmt = "%(asctime)s %(levelname)s " + (f"[rank {rank}] " if rank else "") + "%(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr)


def _split_args(args: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(overrides, data paths): ``key=value`` tokens with a dotted-identifier key are overrides."""
    overrides, paths = [], []
    for a in args:
        key = a.split("=", 1)[0]
        if "=" in a and key.replace(".", "").replace("_", "").isalnum():
            overrides.append(a)
        else:
            paths.append(a)
    return overrides, paths


def _resume_options(f):
    """``--resume`` (newest readable checkpoint of run.out_dir) and ``--resume-from PATH``.

    Two options rather than one with an optional value: that one would swallow a following
    ``key=value`` override as its path.
    """
    f = click.option(
        "--resume-from",
        type=click.Path(dir_okay=False),
        help="Continue from this state-step*.safetensors checkpoint.",
    )(f)
    return click.option(
        "--resume",
        is_flag=True,
        help="Continue from the newest readable checkpoint in run.out_dir/checkpoints.",
    )(f)


def _resume_arg(resume: bool, resume_from: str | None) -> str | None:
    return resume_from or ("latest" if resume else None)


_CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="YAML config (a path, or the name of a shipped config).",
)


@main.command()
@_CONFIG
@click.argument("args", nargs=-1)
@_resume_options
@click.option("--preset", help="= model.preset")
@click.option(
    "--units",
    type=click.Choice(["db", "intensity", "amplitude"]),
    help="Units of the DATA paths given on the command line (default db).",
)
@click.option("--bands", help="1-based bands of the DATA paths, comma-separated (default 1).")
@click.option("--window", type=int, help="= model.img_size")
@click.option("--steps", type=int, help="= optim.steps")
@click.option("--batch-size", type=int, help="= optim.batch_size")
@click.option("--accum-steps", type=int, help="= optim.accum_steps")
@click.option("--base-lr", type=float, help="= optim.base_lr")
@click.option("--warmup-steps", type=int, help="= optim.warmup_steps")
@click.option("--save-every", type=int, help="= run.save_every")
@click.option("--seed", type=int, help="= run.seed")
@click.option("--no-sare", is_flag=True, help="= model.overrides.speckle.enabled=false")
@click.option("--out", help="= run.out_dir")
@click.option("--debug-step-sleep", type=float, default=0.0, hidden=True)
@click.option("--debug-dump-weights", is_flag=True, hidden=True)
def pretrain(
    config_path,
    args,
    resume,
    resume_from,
    preset,
    units,
    bands,
    window,
    steps,
    batch_size,
    accum_steps,
    base_lr,
    warmup_steps,
    save_every,
    seed,
    no_sare,
    out,
    debug_step_sleep,
    debug_dump_weights,
) -> None:
    """Pretrain SARMAE. ARGS: data paths (rasters, chip folders, SAR-1M roots) and key=value.

    \b
    sarmae-train pretrain --config pretrain_tiny.yaml optim.steps=2000 run.out_dir=runs/p1
    sarmae-train pretrain scenes/ --units db --preset sarmae_vit_tiny --steps 2000
    torchrun --nproc_per_node=4 -m sarmae_train.cli pretrain --config my.yaml
    """
    from .config import PretrainRunConfig, apply_overrides, build, read_yaml
    from .pretrain import DebugOptions, run_pretraining

    overrides, paths = _split_args(args)
    flags = {
        "model.preset": preset,
        "model.img_size": window,
        "optim.steps": steps,
        "optim.batch_size": batch_size,
        "optim.accum_steps": accum_steps,
        "optim.base_lr": base_lr,
        "optim.warmup_steps": warmup_steps,
        "run.save_every": save_every,
        "run.seed": seed,
        "run.out_dir": out,
    }
    pre = [f"{k}={v}" for k, v in flags.items() if v is not None]
    if no_sare:
        pre.append("model.overrides.speckle.enabled=false")
    data = apply_overrides(read_yaml(config_path) if config_path else {}, pre)
    if paths:  # before the overrides, so that data.sources.N.key=value can reach them
        band_list = [int(b) for b in (bands or "1").split(",")]
        section = data.setdefault("data", None) or {}
        data["data"] = section
        section["sources"] = (section.get("sources") or []) + [
            _source_for(p, units or "db", band_list) for p in paths
        ]
    cfg = build(PretrainRunConfig, apply_overrides(data, overrides))
    summary = run_pretraining(
        cfg, _resume_arg(resume, resume_from), DebugOptions(debug_step_sleep, debug_dump_weights)
    )
    if summary.get("world_size", 1) == 1 or _rank() == 0:
        click.echo(
            json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})
        )
        click.echo(f"checkpoint: {Path(cfg.run.out_dir) / 'checkpoint.safetensors'}")


def _rank() -> int:
    import os

    return int(os.environ.get("RANK", "0"))


def _source_for(path: str, units: str, bands: list[int]) -> dict:
    """A source for a path given on the command line: SAR-1M root, rasters, or image chips."""
    p = Path(path)
    if p.is_dir() and ((p / "paired.json").is_file() or (p / "unpaired.json").is_file()):
        return {
            "kind": "sar1m",
            "paths": [str(p.resolve())],
            "units": {"units": units},
            "bands": bands,
        }
    from .imageio import RASTER_SUFFIXES

    is_raster = p.suffix.lower() in RASTER_SUFFIXES or (
        p.is_dir() and any(f.suffix.lower() in RASTER_SUFFIXES for f in p.rglob("*"))
    )
    kind = "rasters" if is_raster or not p.exists() else "chips"
    resolved = str(p.resolve()) if p.exists() else path
    return {"kind": kind, "paths": [resolved], "units": {"units": units}, "bands": bands}


@main.command()
@_CONFIG
@click.argument("overrides", nargs=-1)
@click.option(
    "--task", type=click.Choice(["classification", "segmentation", "detection"]), help="= task"
)
@click.option("--init", help="= model.init: our SARMAE .safetensors or the authors' .pth.")
@click.option("--out", help="= run.out_dir")
@_resume_options
def finetune(config_path, overrides, task, init, out, resume, resume_from) -> None:
    """Fine-tune a task model and evaluate it (metrics.json). OVERRIDES: key=value.

    \b
    sarmae-train finetune --config finetune_mstar.yaml --init runs/p1/checkpoint.safetensors
    sarmae-train finetune --config finetune_water_etci.yaml optim.epochs=5 data.root=/data
    """
    from .config import FinetuneRunConfig, load_config
    from .evaluate import headline
    from .finetune import run_finetune

    pre = [
        f"{k}={v}"
        for k, v in {"task": task, "model.init": init, "run.out_dir": out}.items()
        if v is not None
    ]
    _reject_paths(overrides)
    cfg = load_config(FinetuneRunConfig, config_path, pre + list(overrides))
    metrics = run_finetune(cfg, _resume_arg(resume, resume_from))
    if metrics:
        click.echo(f"{cfg.task}: {headline(metrics)}")
        click.echo(f"model: {Path(cfg.run.out_dir) / 'model.safetensors'}")
        click.echo(f"metrics: {Path(cfg.run.out_dir) / 'metrics.json'}")


@main.command()
@_CONFIG
@click.argument("overrides", nargs=-1)
@click.option(
    "--checkpoint",
    required=True,
    type=click.Path(dir_okay=False),
    help="A fine-tuned model.safetensors.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="metrics JSON (default: stdout).")
def evaluate(config_path, overrides, checkpoint, out) -> None:
    """Evaluate a fine-tuned model on the config's test split. OVERRIDES: key=value."""
    from .config import FinetuneRunConfig, load_config
    from .datasets import build_dataset
    from .distributed import device_for
    from .evaluate import detection_table, headline
    from .evaluate import evaluate as run_eval
    from .task_models import load_task_model

    _reject_paths(overrides)
    cfg = load_config(FinetuneRunConfig, config_path, list(overrides))
    model = load_task_model(Path(checkpoint))
    device = device_for(0)
    ds = build_dataset(
        cfg.data, cfg.data.test_split, model.config.data.units, False, cfg.run.seed, model.task
    )
    if ds.class_names != model.class_names:
        raise SarmaeError(
            f"the model's classes {model.class_names} differ from the data's {ds.class_names}"
        )
    metrics = run_eval(model.to(device), ds, cfg.eval, device)
    metrics["checkpoint"] = str(checkpoint)
    # what was scored, for sarmae_train.report (the checkpoint's folder describes its training data)
    metrics["data"] = {
        "format": cfg.data.format, "path": cfg.data.path, "test_split": cfg.data.test_split,
        "shots_per_class": cfg.data.shots_per_class,
    }  # fmt: skip
    text = json.dumps(metrics, indent=2)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
        click.echo(f"{model.task}: {headline(metrics)}\nmetrics: {out}")
        if model.task == "detection":
            click.echo(detection_table(metrics, Path(checkpoint).parent.name))
    else:
        click.echo(text)


def _reject_paths(overrides: tuple[str, ...]) -> None:
    _, paths = _split_args(overrides)
    if paths:
        raise SarmaeError(
            f"expected key=value overrides, got {paths}; data locations go in "
            "the config (data.root=..., data.path=...)"
        )


if __name__ == "__main__":
    main()
