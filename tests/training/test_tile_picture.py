"""``python -m sarmae_train.tile_picture``: the bundled Water model on real held-out ETCI tiles."""

from __future__ import annotations

import pytest
from PIL import Image

from sarmae_train.tile_picture import main

from .conftest import needs_shared_data

pytestmark = needs_shared_data


def test_picture_of_the_bundled_water_model_on_held_out_tiles(tmp_path, capsys):
    out = tmp_path / "tiles.png"
    main([
        "--config", "finetune_water_vvvh_bundled.yaml", "--tiles", "2", "--out", str(out),
        "--pixel-size", "20",
        "--model", "VV=sarmae_core/models/bundled/water.onnx", "data.max_test=12", "--otsu",
    ])  # fmt: skip
    # 2 tiles x (VV, VH, reference, Otsu, model), 256 px panels
    image = Image.open(out)
    assert image.size == (5 * 260 + 4, 2 * 276 + 4)
    assert "2 tiles x 5 panels" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="needs"):
        main([
            "--config", "finetune_water_etci.yaml", "--out", str(tmp_path / "x.png"),
            "--pixel-size", "20", "--model", "VV=sarmae_core/models/bundled/water.onnx",
            "data.bands=[vh]",
        ])  # fmt: skip
