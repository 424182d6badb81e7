"""``sarmae presets``: the model sizes by name."""

from __future__ import annotations

import click


@click.command()
def presets() -> None:
    """List encoder presets (width, depth, heads, parameters)."""
    import torch

    from ..models import create_model, list_presets
    from ..models.registry import PRESETS

    click.echo(f"{'preset':<18}{'width':>6}{'depth':>6}{'heads':>6}{'encoder M params':>18}")
    for name in list_presets():
        p = PRESETS[name]
        with torch.device("meta"):
            n = sum(t.numel() for t in create_model(name).encoder.parameters()) / 1e6
        click.echo(f"{name:<18}{p['embed_dim']:>6}{p['depth']:>6}{p['num_heads']:>6}{n:>18.1f}")
