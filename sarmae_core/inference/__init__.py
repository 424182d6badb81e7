"""Torch-free sliding-window inference over whole georeferenced SAR rasters.

``predict`` runs a segmentation (water) or detection (ships) model over any raster GDAL reads,
in windows and bounded memory, and writes class/probability GeoTIFFs and GeoPackages. Only
numpy, onnxruntime and one library for files are needed: GDAL's Python bindings (``osgeo``,
what QGIS ships) when they import, else rasterio (:mod:`~sarmae_core.inference.io.raster_io`);
torch is imported only by the torch backend (:mod:`sarmae_core.models.backend`), when asked
for.
"""

from ..errors import OutputExistsError
from .model.backends import Backend, CallableBackend, OnnxBackend, load_backend
from .model.cfar import CfarDetector, CfarParams
from .notes import InferenceWarning
from .options import RunOptions
from .predict import predict
from .products.result import PredictionResult, PredictionSummary

__all__ = [
    "Backend",
    "CallableBackend",
    "CfarDetector",
    "CfarParams",
    "InferenceWarning",
    "OnnxBackend",
    "OutputExistsError",
    "PredictionResult",
    "PredictionSummary",
    "RunOptions",
    "load_backend",
    "predict",
]
