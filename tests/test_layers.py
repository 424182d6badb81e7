"""The layers lean only downwards: the contract is torch- and GDAL-free, and the inference
engine and the CLI's inference commands load no exporter or torch model code (issue 14)."""

from __future__ import annotations

import json
import subprocess
import sys


def loaded_after(code: str) -> set[str]:
    """Top-level packages and sarmae_core subpackages a fresh interpreter holds after ``code``."""
    probe = (
        f"{code}\nimport json, sys\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} | "
        "{'.'.join(m.split('.')[:2]) for m in sys.modules if m.startswith('sarmae_core.')})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=120)  # fmt: skip
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_contract_imports_neither_torch_nor_gdal():
    mods = loaded_after("from sarmae_core.contract.reader import read_model_info")
    assert "sarmae_core.contract" in mods
    assert not mods & {"torch", "timm", "osgeo", "rasterio", "onnx", "sarmae_core.export",
                       "sarmae_core.models", "sarmae_core.inference"}  # fmt: skip


def test_inference_and_its_cli_load_no_exporter_and_no_torch_models():
    mods = loaded_after(
        "import sarmae_core\n"
        "from sarmae_core.inference import predict\n"
        "from sarmae_core.inference.many import predict_many\n"
        "from sarmae_core.inference.model.backends import load_backend\n"
        "import sarmae_core.cli, sarmae_core.cli.predict, sarmae_core.cli.info\n"
        "import sarmae_core.cli.many"
    )
    assert "sarmae_core.inference" in mods and "sarmae_core.contract" in mods
    assert not mods & {"torch", "sarmae_core.export", "sarmae_core.models"}


def test_the_torch_backend_registers_from_the_models_side(tmp_path):
    """Inference finds the torch backend by its registered provider, and says what to
    install where torch is missing (a plain `pip install sarmae`)."""
    from sarmae_core.inference.model.backends import registered_backend
    from sarmae_core.models.backend import TorchBackend

    assert registered_backend("torch") is TorchBackend
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"{}")
    probe = (
        "import sys; sys.modules['torch'] = None\n"
        "from sarmae_core.errors import ConfigError\n"
        "from sarmae_core.inference.model.backends import load_backend\n"
        f"try:\n    load_backend({str(ckpt)!r})\nexcept ConfigError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=120)  # fmt: skip
    assert "the torch backend needs torch" in done.stdout
    assert "pip install 'sarmae[train]'" in done.stdout
