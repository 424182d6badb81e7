"""``python -m sarmae_train.tile_picture``: the bundled Water model on real held-out ETCI tiles."""

from __future__ import annotations

import numpy as np
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


def test_scene_picture_shows_windows_of_the_scene_map(tmp_path, capsys):
    """``--scene``: the tiles laid out as their scene and mapped once, as a user maps a scene;
    each panel is the scene map over its tile (a tile alone is mirrored into the model's
    512 px tile instead), so the two pictures differ."""
    pictures = {}
    for mode in ([], ["--scene"]):
        out = tmp_path / f"tiles{len(mode)}.png"
        main([
            "--config", "finetune_water_bundled.yaml", "--tiles", "2", "--out", str(out),
            "--pixel-size", "20", "--model", "VV=sarmae_core/models/bundled/water.onnx",
            "data.max_test=12", *mode,
        ])  # fmt: skip
        pictures[bool(mode)] = np.asarray(Image.open(out).convert("RGB"))
    assert "2 tiles x 3 panels" in capsys.readouterr().out
    alone, scene = pictures[False], pictures[True]
    assert alone.shape == scene.shape == (2 * 276 + 4, 3 * 260 + 4, 3)
    model = np.s_[:, 2 * 260 + 4 :]  # the model's column; VV and reference are the same
    assert (alone[:, : 2 * 260] == scene[:, : 2 * 260]).all()
    assert (alone[model] != scene[model]).any()
