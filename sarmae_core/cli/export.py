"""``sarmae export CHECKPOINT -o MODEL.onnx``: a fine-tuned model as one ONNX file."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import CheckpointError


@click.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Output .onnx file.")  # fmt: skip
@click.option("--tile", type=int, default=None, help="Tile side in pixels (default: trained).")
@click.option("--overlap", type=int, default=None, help="Recommended overlap in pixels.")
@click.option("--name", default="", help="Short model name, e.g. water.")
@click.option("--training-data", default="", help="Training data with attribution.")
@click.option("--licence", default="", help="Licence of the weights.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Compare onnxruntime with torch on random SAR-like tiles.")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--confidence", type=float, default=None,
              help="Detection: default confidence the model carries (default 0.3).")  # fmt: skip
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Segmentation: the probability threshold the model carries (default 0.5).",
)
@click.option("--weights", type=click.Choice(["float32", "float16", "int8"]), default="float32",
              show_default=True,
              help="float16: weights in half the bytes, computed in float32; int8: a third "
                   "of the bytes, faster on a CPU (CPU-only use).")  # fmt: skip
def export(checkpoint, output, tile, overlap, name, training_data, licence, check, overwrite,
           confidence, threshold, weights):  # fmt: skip
    """Export a fine-tuned CHECKPOINT (.safetensors) to ONNX with its metadata.

    With --weights float16 or int8, CHECKPOINT may also be an exported .onnx model: it is
    rewritten with those weights, its metadata unchanged.
    """
    from ..files import model_file_kind

    if weights != "float32" and checkpoint.is_file() and model_file_kind(checkpoint) == "onnx":
        from ..export.weights import write_compact

        write_compact(checkpoint, output, weights, overwrite=overwrite)
        click.echo(
            f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB, {weights} weights; "
            f"{checkpoint} has {checkpoint.stat().st_size / 1e6:.1f} MB)"
        )
        return
    import torch

    from ..export.onnx import check_parity, export_onnx
    from ..models.checkpoint import load_checkpoint

    _check_is_checkpoint(checkpoint)
    model = load_checkpoint(checkpoint)
    if not hasattr(model, "export_outputs"):
        raise CheckpointError(
            f"{checkpoint} holds a pretraining model; fine-tune it first "
            "(sarmae-train finetune), then export the task model"
        )
    info = export_onnx(
        model, output, tile_size=tile, tile_overlap=overlap, name=name,
        training_data=training_data, licence=licence, overwrite=overwrite, confidence=confidence,
        threshold=threshold, weights=weights,
    )  # fmt: skip
    size_mb = output.stat().st_size / 1e6
    click.echo(
        f"wrote {output} ({size_mb:.1f} MB): {info.task}, classes {info.class_names}, "
        f"tile {info.tile_size} px, units {info.units}"
    )
    if check:
        g = torch.Generator().manual_seed(0)
        c, t = info.in_chans, info.tile_size
        x = -12.0 + 5.0 * torch.randn(2, c, t, t, generator=g)  # dB-like values
        diff = check_parity(model, output, x)
        click.echo(f"parity torch vs onnxruntime: max abs diff {diff:.2e}")


def _check_is_checkpoint(path: Path) -> None:
    """Say what the file is when it is not what ``export`` takes (not "corrupt")."""
    from ..files import model_file_kind

    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    kind = model_file_kind(path)
    expects = (
        "`sarmae export` takes a fine-tuned .safetensors checkpoint written by "
        "`sarmae-train finetune`"
    )
    if kind == "onnx":
        raise CheckpointError(
            f"{path} is an ONNX model, already exported: {expects}. Run the ONNX model with "
            f"`sarmae predict --model {path}`, see what it holds with `sarmae info {path}`, "
            "or make it smaller with --weights float16 or int8"
        )
    if kind == "torch":
        raise CheckpointError(
            f"{path} is a PyTorch (torch.save) checkpoint: {expects}. Pickled files are never "
            "loaded here (they can run code); pass the authors' .pth weights to "
            "`sarmae-train finetune --init`, then export the checkpoint it writes"
        )
    if kind != "safetensors":
        raise CheckpointError(f"{path} is {'empty' if kind == 'empty' else 'not a checkpoint'}"
                              f": {expects}")  # fmt: skip
