"""The model contract: what a model takes and gives (units, bands, tile, normalisation, classes,
dates), as carried in an ONNX file's ``metadata_props``.

Torch-free and GDAL-free (numpy is not needed either; reading a file needs onnxruntime): the
models and the exporter write it, the inference engine, the CLI and the QGIS plugin read it.
"""

from .metadata import ModelInfo

__all__ = ["ModelInfo"]
