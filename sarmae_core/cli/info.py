"""``sarmae info MODEL``: what a model expects and produces."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import CheckpointError


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
def info(model: Path, as_json: bool) -> None:
    """Print the parameters stored in an ONNX model or a safetensors checkpoint."""
    if not model.exists():
        raise CheckpointError(f"{model} does not exist")
    if model.suffix == ".onnx":
        from dataclasses import asdict

        from ..contract.metadata import other_tools
        from ..contract.reader import read_model_info

        model_info = read_model_info(model)
        data = asdict(model_info) | other_tools(model_info)
    elif model.suffix == ".safetensors":
        from ..models.checkpoint import read_checkpoint

        config, tensors, extras = read_checkpoint(model)
        data = {"checkpoint": extras.pop("kind"), **extras, "config": config.to_dict()}
        data["parameters"] = sum(t.numel() for t in tensors.values())
    else:
        raise CheckpointError(f"{model}: expected a .onnx model or a .safetensors checkpoint")
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        click.echo(f"{key:<{width}}  {text}")
