"""``sarmae-train``: pretrain SARMAE (fine-tuning is still to come, see the README)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from sarmae_core.errors import SarmaeError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (SarmaeError, FileExistsError) as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True)
def main(verbose: bool) -> None:
    """Train SARMAE models on SAR rasters."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )


@main.command()
@click.argument("data", nargs=-1, required=True)
@click.option("--preset", default="sarmae_vit_tiny", show_default=True)
@click.option("--units", default="db", show_default=True,
              type=click.Choice(["db", "intensity", "amplitude"]),
              help="Units the rasters are in (converted to the model's dB).")  # fmt: skip
@click.option("--bands", default="1", show_default=True, help="Comma-separated 1-based bands.")
@click.option("--window", default=None, type=int, help="Window side (default: preset size).")
@click.option("--steps", default=1000, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--accum-steps", default=1, show_default=True)
@click.option("--base-lr", default=1.5e-4, show_default=True)
@click.option("--warmup-steps", default=50, show_default=True)
@click.option("--save-every", default=500, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--no-sare", is_flag=True, help="Switch the speckle augmentation off.")
@click.option("--out", "out_dir", default="runs/pretrain", type=click.Path(path_type=Path),
              show_default=True)  # fmt: skip
def pretrain(data, preset, units, bands, window, steps, batch_size, accum_steps, base_lr,
             warmup_steps, save_every, seed, no_sare, out_dir) -> None:  # fmt: skip
    """Pretrain on windows drawn from the rasters in DATA (files, folders or globs)."""
    from sarmae_core.models import create_model
    from sarmae_core.speckle import SpeckleConfig

    from .data import RasterWindowDataset, find_rasters
    from .pretrain import PretrainConfig, run_pretraining

    band_list = [int(b) for b in bands.split(",")]
    overrides = {"speckle": SpeckleConfig(enabled=not no_sare)}
    if window:
        overrides["img_size"] = window
    model = create_model(preset, in_chans=len(band_list), **overrides)
    size = model.config.img_size
    cfg = PretrainConfig(steps=steps, batch_size=batch_size, accum_steps=accum_steps,
                         base_lr=base_lr, warmup_steps=warmup_steps, save_every=save_every,
                         seed=seed, out_dir=out_dir)  # fmt: skip
    dataset = RasterWindowDataset(
        find_rasters(list(data)), size, units, model.config.data.units, band_list,
        length=max(batch_size * accum_steps * 20, batch_size), seed=seed,
    )  # fmt: skip
    summary = run_pretraining(model, dataset, cfg)
    click.echo(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                           for k, v in summary.items()}))  # fmt: skip
    click.echo(f"checkpoint: {out_dir / 'checkpoint.safetensors'}")


if __name__ == "__main__":
    main()
