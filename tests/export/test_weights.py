"""Smaller models: float16-stored weights and int8 matrix products keep the contract and the
maps (real bundled models, real Sentinel-1 scene, real onnxruntime)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import rasterio
import torch
from onnx import TensorProto

from sarmae_core import predict
from sarmae_core.contract.reader import read_model_info
from sarmae_core.errors import ConfigError
from sarmae_core.export.onnx import check_parity, export_onnx
from sarmae_core.export.weights import compact_bytes, store_float16, write_compact
from sarmae_core.models.heads import SegmentationModel
from sarmae_core.models.registry import make_config

from ..conftest import S1_VV_DB

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "sarmae_core" / "models" / "bundled"


def float_bytes(path: Path) -> dict[int, int]:
    """Bytes of initializers by ONNX element type."""
    out: dict[int, int] = {}
    for t in onnx.load(str(path)).graph.initializer:
        out[t.data_type] = out.get(t.data_type, 0) + len(t.raw_data)
    return out


def run_water(model: Path, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir()
    res = predict(S1_VV_DB, model=str(model), output=folder / "w.tif",
                  products=("class", "probability"))  # fmt: skip
    with rasterio.open(res.files["class"]) as c, rasterio.open(res.files["probability"]) as p:
        return c.read(1), p.read(1)


@pytest.mark.parametrize(("weights", "size", "max_dp"), [("float16", 0.55, 2e-3),
                                                         ("int8", 0.4, 2e-2)])  # fmt: skip
def test_bundled_water_smaller_gives_the_same_map(tmp_path, weights, size, max_dp):
    small = write_compact(BUNDLED / "water.onnx", tmp_path / "small.onnx", weights)
    assert small.stat().st_size < size * (BUNDLED / "water.onnx").stat().st_size
    kinds = float_bytes(small)
    assert kinds[TensorProto.FLOAT16] > 2 * kinds.get(TensorProto.FLOAT, 0)
    if weights == "int8":
        assert kinds[TensorProto.INT8] > kinds[TensorProto.FLOAT16]
    # the contract travels unchanged: what predict and the plugin read
    assert read_model_info(small) == read_model_info(BUNDLED / "water.onnx")
    with pytest.raises(FileExistsError):
        write_compact(BUNDLED / "water.onnx", small, weights)

    full_class, full_prob = run_water(BUNDLED / "water.onnx", tmp_path / "f32")
    small_class, small_prob = run_water(small, tmp_path / "small")
    known = np.isfinite(full_prob)
    assert np.array_equal(known, np.isfinite(small_prob))
    assert np.abs(small_prob[known] - full_prob[known]).max() < max_dp
    wet, wet_small = full_class == 1, small_class == 1
    assert wet.sum() > 1000  # the scene has water: the comparison means something
    assert (wet & wet_small).sum() / (wet | wet_small).sum() > 0.99
    assert compact_bytes(BUNDLED / "water.onnx", "float32") == (BUNDLED / "water.onnx").read_bytes()
    with pytest.raises(ConfigError, match="unknown weights"):
        compact_bytes(BUNDLED / "water.onnx", "int4")


def test_conversion_is_idempotent_and_keeps_small_and_huge_tensors():
    proto = onnx.load(str(BUNDLED / "ships.onnx"))
    converted = store_float16(proto)
    assert converted > 20
    assert store_float16(proto) == 0  # nothing float32 and large is left
    names = {t.name for t in proto.graph.initializer}
    cast_outputs = {n.output[0] for n in proto.graph.node if n.op_type == "Cast"}
    for t in proto.graph.initializer:
        if t.data_type == TensorProto.FLOAT16:
            assert t.name.endswith("__float16") and t.name.removesuffix("__float16") in cast_outputs
    assert not (cast_outputs & names)  # each weight has exactly one producer

    big = onnx.helper.make_tensor("w", TensorProto.FLOAT, [2048], np.full(2048, 1e6, np.float32))
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Add", ["x", "w"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", TensorProto.FLOAT, [2048])],
        [onnx.helper.make_tensor_value_info("y", TensorProto.FLOAT, [2048])], [big],
    )  # fmt: skip
    assert store_float16(onnx.helper.make_model(graph)) == 0  # 1e6 would be inf in float16


def test_export_writes_smaller_weights_with_parity_to_torch(tmp_path):
    torch.manual_seed(0)
    model = SegmentationModel(make_config("sarmae_test"), 2, class_names=["land", "water"])
    full = tmp_path / "f32.onnx"
    half = tmp_path / "f16.onnx"
    export_onnx(model, full, name="t")
    export_onnx(model, half, name="t", weights="float16")
    export_onnx(model, tmp_path / "i8.onnx", name="t", weights="int8")
    assert float_bytes(tmp_path / "i8.onnx").get(TensorProto.INT8, 0) > 0
    assert read_model_info(tmp_path / "i8.onnx") == read_model_info(full)
    # the test preset is tiny: its many small tensors (norms, biases) stay float32
    assert half.stat().st_size < 0.75 * full.stat().st_size
    kinds = float_bytes(half)
    assert kinds[TensorProto.FLOAT16] > kinds[TensorProto.FLOAT]
    x = torch.randn(2, 1, 64, 64) * 5 - 12
    assert check_parity(model, half, x) < 2e-3
    assert check_parity(model, tmp_path / "i8.onnx", x) < 5e-2
    with pytest.raises(ConfigError, match="unknown weights"):
        export_onnx(model, tmp_path / "x.onnx", weights="int4")


def test_cli_export_float16(tmp_path):
    """``sarmae export CKPT -o M.onnx --weights float16`` on a real checkpoint file."""
    from sarmae_core.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = SegmentationModel(make_config("sarmae_test"), 2, class_names=["land", "water"])
    ckpt = tmp_path / "model.safetensors"
    save_checkpoint(model, ckpt)
    out = tmp_path / "m.onnx"
    done = subprocess.run(
        [sys.executable, "-m", "sarmae_core.cli", "export", str(ckpt), "-o", str(out),
         "--weights", "float16"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "parity torch vs onnxruntime" in done.stdout
    assert float_bytes(out).get(TensorProto.FLOAT16, 0) > 0


def test_cli_shrinks_an_exported_model_and_never_overwrites_unasked(tmp_path):
    """``sarmae export water.onnx -o water16.onnx --weights float16`` (README, Smaller models)."""
    out = tmp_path / "water16.onnx"
    argv = [sys.executable, "-m", "sarmae_core.cli", "export", str(BUNDLED / "water.onnx"),
            "-o", str(out), "--weights", "float16"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "float16 weights" in done.stdout
    assert read_model_info(out) == read_model_info(BUNDLED / "water.onnx")
    before = out.read_bytes()
    again = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and out.read_bytes() == before
    # without --weights float16 an ONNX input is still refused, and told what it can do
    plain = subprocess.run(argv[:-2], capture_output=True, text=True, check=False, timeout=300)
    assert plain.returncode == 2 and "--weights float16 or int8" in plain.stderr
