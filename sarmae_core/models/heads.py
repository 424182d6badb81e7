"""Task models on the SAR ViT encoder: segmentation, ship detection and scene classification.

Every task model takes images in the physical units of ``config.data`` (e.g. dB) and normalises
them inside, so that an exported ONNX graph takes raster values directly. The dense heads read
four intermediate blocks through ``SarViTEncoder.block_maps`` (the authors' UPerNet
uses blocks [3, 5, 7, 11] of ViT-B), rescale them into a ViTDet-style simple feature pyramid
(Li et al. 2022: transposed convs up, max-pool down) and fuse it FPN/UPerNet style at stride 4.
Segmentation classifies that map; detection puts a CenterNet head (Zhou et al. 2019) on it,
which keeps the small ships of SAR scenes a few cells wide instead of below one stride-16 patch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch import nn

from ..errors import ConfigError
from .normalization import InputNormalization
from .registry import ModelConfig
from .vit import SarViTEncoder

TASKS = ("segmentation", "detection", "classification")


def default_indices(depth: int) -> list[int]:
    """Four evenly spaced blocks: [3, 5, 7, 11] for depth 12, [7, 11, 15, 23] for depth 24."""
    return [max(0, round(f * depth) - 1) for f in (4 / 12, 6 / 12, 8 / 12, 1.0)]


def default_decoder_channels(embed_dim: int) -> int:
    """Decoder width: 64 for ViT-Tiny, 256 for ViT-B/L; small enough for CPU inference."""
    return min(256, max(32, embed_dim // 3))


class _TaskModel(nn.Module):
    """Encoder + input normalisation shared by every task model."""

    task: str = ""
    #: ONNX output names, in the order of :meth:`export_outputs`.
    output_names: tuple[str, ...] = ()

    def __init__(self, config: ModelConfig, class_names: Sequence[str]) -> None:
        super().__init__()
        self.config = config
        self.class_names = list(class_names)
        self.encoder = SarViTEncoder.from_config(config)
        self.input_norm = InputNormalization(config.data.normalization)
        #: How ``predict`` runs this model unless told otherwise, written by fine-tuning into
        #: the checkpoint: ``tile_size`` and ``tile_overlap`` (px) and, for detection,
        #: ``det_iou_threshold`` (the NMS IoU its metrics were measured with). Empty: the
        #: engine's defaults (the config's ``img_size``, a quarter of it, ModelInfo's IoU).
        self.inference: dict[str, Any] = {}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Physical units (``config.data.units``) -> the encoder's normalised input."""
        if x.ndim != 4 or x.shape[1] != self.input_norm.channels:
            self.encoder.check_input(x)  # raises the InputError that names the bands
        return self.input_norm(x)

    def export_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What the ONNX graph returns, named by :attr:`output_names`."""
        raise NotImplementedError

    def head_options(self) -> dict[str, Any]:
        """Constructor options beyond config and classes (stored in checkpoints)."""
        return {}

    def checkpoint_extras(self) -> dict[str, Any]:
        """Header entries that, with the config, rebuild this model from a checkpoint."""
        extras = {"task": self.task, "class_names": self.class_names, "head": self.head_options()}
        return {**extras, "inference": dict(self.inference)} if self.inference else extras

    @classmethod
    def from_checkpoint_extras(cls, config: ModelConfig, extras: dict[str, Any]) -> _TaskModel:
        """Inverse of :meth:`checkpoint_extras` (used by ``load_checkpoint``)."""
        names = extras.get("class_names")
        if not names:
            raise ConfigError(f"a {cls.__name__} checkpoint must name its classes")
        model = cls(config, num_classes=len(names), class_names=names, **extras.get("head", {}))
        model.inference = dict(extras.get("inference") or {})
        return model


def _class_names(names: Sequence[str] | None, num_classes: int, default: list[str]) -> list[str]:
    if num_classes < 1:
        raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
    names = list(default if names is None else names)
    if len(names) != num_classes:
        raise ConfigError(f"{len(names)} class names {names} for {num_classes} classes")
    return names


def _conv_norm_act(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), LayerNorm2d(c_out), nn.GELU()
    )


class SimpleFeaturePyramid(nn.Module):
    """Four block maps at the patch stride p -> maps at strides p/4, p/2, p and 2p.

    For 16 px patches these are strides 4, 8, 16 and 32. Each level is first projected to
    ``channels`` with a 1x1 conv, so the transposed convs run on the narrow width (cheaper on a
    CPU than ViTDet's rescale-then-project order).
    """

    def __init__(self, embed_dim: int, channels: int) -> None:
        super().__init__()
        c = channels
        self.proj = nn.ModuleList(_conv_norm_act(embed_dim, c, 1) for _ in range(4))
        self.rescale = nn.ModuleList([
            nn.Sequential(
                nn.ConvTranspose2d(c, c, 2, 2), LayerNorm2d(c), nn.GELU(),
                nn.ConvTranspose2d(c, c, 2, 2),
            ),
            nn.ConvTranspose2d(c, c, 2, 2),
            nn.Identity(),
            # ceil_mode keeps one cell for a one-patch-wide input instead of none.
            nn.MaxPool2d(2, ceil_mode=True),
        ])  # fmt: skip

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        # feats: 4 x [N, D, gh, gw] -> [N, C, 4gh, 4gw], [N, C, 2gh, 2gw], [N, C, gh, gw], ...
        return [r(p(f)) for p, r, f in zip(self.proj, self.rescale, feats, strict=True)]


class PyramidFusion(nn.Module):
    """FPN top-down pathway, then UPerNet's concat of every level at the finest stride."""

    def __init__(self, channels: int, levels: int = 4) -> None:
        super().__init__()
        self.smooth = nn.ModuleList(_conv_norm_act(channels, channels, 3) for _ in range(levels))
        self.fuse = _conv_norm_act(levels * channels, channels, 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        feats = list(feats)
        for i in range(len(feats) - 2, -1, -1):  # coarse to fine
            feats[i] = feats[i] + _resize(feats[i + 1], feats[i].shape[-2:])
        outs = [s(f) for s, f in zip(self.smooth, feats, strict=True)]
        size = outs[0].shape[-2:]
        # fuse = 1x1 conv over the levels concatenated at the finest stride, then
        # norm and GELU. The conv is linear per pixel and bilinear resizing is linear per
        # channel, so each level's slice of the conv runs at the level's own stride and the
        # resized results are summed: the same function without the [N, 4C, H/4, W/4] concat
        # (the largest tensor of the decoder) and with the conv on 1/4 to 1/64 of the cells.
        conv, norm, act = self.fuse
        weights = conv.weight.split(conv.weight.shape[1] // len(outs), dim=1)
        fused = F.conv2d(outs[0], weights[0])
        for w, o in zip(weights[1:], outs[1:], strict=True):
            fused = fused + _resize(F.conv2d(o, w), size)
        if conv.bias is not None:  # once: resizing keeps constants
            fused = fused + conv.bias.view(1, -1, 1, 1)
        return act(norm(fused))


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class _DenseTaskModel(_TaskModel):
    """Encoder -> four intermediate blocks -> simple pyramid -> fused map at stride p/4."""

    def __init__(
        self,
        config: ModelConfig,
        class_names: Sequence[str],
        indices: Sequence[int] | None = None,
        channels: int | None = None,
    ) -> None:
        super().__init__(config, class_names)
        if config.patch_size % 4:
            raise ConfigError(f"dense heads need a patch divisible by 4, got {config.patch_size}")
        self.indices = list(default_indices(config.depth) if indices is None else indices)
        if len(self.indices) != 4:
            raise ConfigError(f"give 4 block indices (one per pyramid level), got {self.indices}")
        self.channels = channels or default_decoder_channels(config.embed_dim)
        #: Input pixels per cell of the fused map (4 for 16 px patches).
        self.stride = config.patch_size // 4
        self.pyramid = SimpleFeaturePyramid(config.embed_dim, self.channels)
        self.fusion = PyramidFusion(self.channels)

    def head_options(self) -> dict[str, Any]:
        return {"indices": self.indices, "channels": self.channels}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C_in, H, W] in physical units -> fused map [N, C, H/stride, W/stride]."""
        return self.decoder_map(self.normalize(x))

    def decoder_map(self, xn: torch.Tensor) -> torch.Tensor:
        """Normalised input -> fused map: 4 x [N, D, gh, gw] -> [N, C, 4gh, 4gw]."""
        return self.fusion(self.pyramid(self.encoder.block_maps(xn, self.indices)))


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 Conv + BatchNorm + ReLU: onnxruntime folds the triple into one conv."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class DetailPath(nn.Module):
    """Full-resolution refinement of a coarse decoder map (UNETR / ViT-Adapter style).

    A ViT with 16 px patches sees 160-320 m cells at 10-20 m pixels, while water edges, rivers,
    dykes and field parcels live at one or two pixels. Two small conv stems read the normalised
    input at strides 1 and 2; the decoder map is narrowed by a 1x1 conv where it is cheap (at
    its own stride), upsampled and fused with the stride-2 stem, then with the stride-1 stem,
    so that boundaries follow the pixels while the encoder decides which dark areas are water.
    Conv + BatchNorm + ReLU throughout: onnxruntime folds each triple into one conv, which
    matters at full resolution on a CPU.

    Args:
        in_chans: input channels (bands).
        coarse: channels of the decoder map.
        width: channels at stride 1 (stride 2 gets twice as many).
    """

    def __init__(self, in_chans: int, coarse: int, width: int) -> None:
        super().__init__()
        c1, c2 = width, 2 * width
        self.stem1 = _conv_bn_relu(in_chans, c1)
        self.stem2 = _conv_bn_relu(c1, c2, stride=2)
        self.reduce = nn.Sequential(nn.Conv2d(coarse, c2, 1, bias=False), nn.BatchNorm2d(c2))
        self.fuse2 = _conv_bn_relu(2 * c2, c2)
        self.fuse1 = _conv_bn_relu(c2 + c1, c1)
        self.out_channels = c1

    def forward(self, x: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """Normalised input [N, C, H, W] and decoder map [N, D, h, w] -> [N, width, H, W]."""
        d1 = self.stem1(x)  # [N, c1, H, W]
        d2 = self.stem2(d1)  # [N, c2, H/2, W/2]
        c = _resize(self.reduce(coarse), d2.shape[-2:])
        f2 = self.fuse2(torch.cat([c, d2], dim=1))
        return self.fuse1(torch.cat([_resize(f2, d1.shape[-2:]), d1], dim=1))


class SmallTargetStem(nn.Module):
    """Pixel-level cues on the stride-4 detection map, for small bright targets.

    A ship of 10-40 px fills part of one 16 px patch token, where the ViT mixes it with the sea
    around it; the pyramid then upsamples that token to the stride-4 map. Two small conv stems
    read the normalised input at strides 2 and 4, and a 3x3 conv fuses them with the decoder
    map (same width out), so the CenterNet head sees the target's own pixels beside the
    encoder's context (the detection counterpart of :class:`DetailPath`).

    The fused cues are added to the decoder map, and the fuse's BatchNorm scale starts at zero,
    so a new stem starts as the identity: 1080 fine-tuning steps on a few dozen tiles are too
    few to recover from a randomly started replacement of the pretrained map (measured:
    training/README.md, "A small-target stem").

    Args:
        in_chans: input channels (bands).
        coarse: channels of the decoder map (kept).
        width: channels at stride 2 (stride 4 gets twice as many).
    """

    def __init__(self, in_chans: int, coarse: int, width: int) -> None:
        super().__init__()
        self.stem2 = _conv_bn_relu(in_chans, width, stride=2)
        self.stem4 = _conv_bn_relu(width, 2 * width, stride=2)
        self.fuse = _conv_bn_relu(coarse + 2 * width, coarse)
        nn.init.zeros_(self.fuse[1].weight)

    def forward(self, x: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """Normalised input [N, C, H, W] and decoder map [N, D, H/4, W/4] -> [N, D, H/4, W/4]."""
        fine = _resize(self.stem4(self.stem2(x)), coarse.shape[-2:])
        return coarse + self.fuse(torch.cat([coarse, fine], dim=1))


class SegmentationModel(_DenseTaskModel):
    """Semantic segmentation: UPerNet-lite on a simple feature pyramid, full-resolution logits.

    Args:
        encoder_config: encoder and data configuration.
        num_classes: number of classes K, background (index 0) included.
        indices: the four encoder blocks to read (default :func:`default_indices`).
        class_names: names by class index (default ``background, class_1, ...``).
        channels: decoder width (default :func:`default_decoder_channels`).
        detail: channels of the full-resolution :class:`DetailPath` (0: none; logits are then
            the stride-4 decoder map upsampled, which draws outlines a few cells wide).
        context_pool: the encoder reads the input average-pooled by this factor (1 or 2), so
            it sees twice the context per token at a quarter of the cost, while the detail path
            keeps the input's pixels. Tiles must be multiples of ``patch * context_pool``.
    """

    task = "segmentation"
    output_names = ("probabilities",)

    def __init__(
        self,
        encoder_config: ModelConfig,
        num_classes: int = 2,
        indices: Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        channels: int | None = None,
        detail: int = 0,
        context_pool: int = 1,
    ) -> None:
        default = ["background", *(f"class_{i}" for i in range(1, num_classes))]
        super().__init__(
            encoder_config, _class_names(class_names, num_classes, default), indices, channels
        )
        if context_pool not in (1, 2):
            raise ConfigError(f"context_pool must be 1 or 2, got {context_pool}")
        if detail < 0:
            raise ConfigError(f"detail must be 0 (none) or a channel count, got {detail}")
        if context_pool > 1 and not detail:
            raise ConfigError("context_pool > 1 needs the detail path (set detail, e.g. 8)")
        self.detail, self.context_pool = int(detail), int(context_pool)
        self.detail_path = (
            DetailPath(encoder_config.in_chans, self.channels, self.detail) if detail else None
        )
        width = self.detail_path.out_channels if self.detail_path else self.channels
        self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(width, num_classes, 1))

    def head_options(self) -> dict[str, Any]:
        return {**super().head_options(), "detail": self.detail, "context_pool": self.context_pool}

    @property
    def tile_multiple(self) -> int:
        """Tile sides must be multiples of this many pixels."""
        return self.config.patch_size * self.context_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] in physical units -> logits [N, K, H, W]."""
        if self.detail_path is None:
            logits = self.classifier(self.features(x))  # [N, K, H/4, W/4]
            return _resize(logits, x.shape[-2:])
        xn = self.normalize(x)
        ctx = F.avg_pool2d(xn, self.context_pool) if self.context_pool > 1 else xn
        return self.classifier(self.detail_path(xn, self.decoder_map(ctx)))

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax class probabilities [N, K, H, W]."""
        return self(x).softmax(dim=1)

    def export_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (_channel_softmax(self(x)),)


def _channel_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``logits.softmax(dim=1)`` written as reductions and element-wise ops for export:
    onnxruntime runs a Softmax on a non-last axis through transposes, ~8x slower on [N, 2, H, W]
    than these."""
    e = (logits - logits.amax(dim=1, keepdim=True)).exp()
    return e / e.sum(dim=1, keepdim=True)


class DetectionModel(_DenseTaskModel):
    """Anchor-free (CenterNet) object detection, suited to small ships, on the stride-4 map.

    Output contract (``forward`` returns a dict; the ONNX graph returns the same tensors in the
    order ``heatmap, size, offset``), for an input [N, C, H, W] and ``s = stride`` (4 for 16 px
    patches; a decoder may take ``s = H / heatmap.shape[-2]``):

    - ``heatmap`` [N, K, H/s, W/s]: per-class object-centre confidence in [0, 1] (sigmoid).
    - ``size`` [N, 2, H/s, W/s]: box width and height in input pixels (> 0), channels (w, h).
    - ``offset`` [N, 2, H/s, W/s]: centre offset (dx, dy) in cells from the cell's corner: in
      [0, 1] (sigmoid), or, with ``centre_region``, unbounded, so any cell of a hull points to
      the centre of the whole hull.

    Decoding: peaks are heatmap cells equal to their 3x3 max-pool (local maxima) and above a
    confidence; at a peak in row i, column j, centre = ((j + dx) * s, (i + dy) * s) in pixels,
    box = centre -/+ size / 2, i.e. (cx - w/2, cy - h/2, cx + w/2, cy + h/2); class = channel.

    Args:
        encoder_config: encoder and data configuration.
        num_classes: object classes K (1: ships).
        indices, class_names, channels: as for :class:`SegmentationModel`.
        centre_region: size and offset are trained on every cell of the centre Gaussian, not
            only the centre cell (TTFNet, Liu et al. 2020), and the offset is unbounded. A long
            ship's heatmap is flat along its hull and may peak twice; with a region every peak
            predicts the whole hull, so the peaks give the same box and NMS keeps one, where a
            centre-only head answers two half-length boxes (issue 11).
        detail: channels of the :class:`SmallTargetStem` at stride 2 (0: none).
    """

    task = "detection"
    output_names = ("heatmap", "size", "offset")

    def __init__(
        self,
        encoder_config: ModelConfig,
        num_classes: int = 1,
        indices: Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        channels: int | None = None,
        centre_region: bool = False,
        detail: int = 0,
    ) -> None:
        default = ["ship"] if num_classes == 1 else [f"class_{i}" for i in range(num_classes)]
        super().__init__(
            encoder_config, _class_names(class_names, num_classes, default), indices, channels
        )
        c = self.channels
        if detail < 0:
            raise ConfigError(f"detail must be 0 (none) or a channel count, got {detail}")
        self.detail = int(detail)
        self.small_target_stem = (
            SmallTargetStem(encoder_config.in_chans, c, self.detail) if detail else None
        )
        # One 3x3 trunk shared by the three outputs: CenterNet gives each its own, but at
        # stride 4 those convs cost more than the whole pyramid on a CPU.
        self.trunk = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU())

        def head(out: int, bias: float) -> nn.Conv2d:
            conv = nn.Conv2d(c, out, 1)
            nn.init.constant_(conv.bias, bias)
            return conv

        # Heatmap bias -2.19 = logit(0.1): the CenterNet prior that keeps early focal loss calm.
        # Size is predicted as a log: ships span ~3 to ~300 px, an exp keeps them positive and
        # the L1 loss scale-free; start at 16 px.
        self.heatmap_head = head(num_classes, -2.19)
        self.size_head = head(2, math.log(16.0))
        self.offset_head = head(2, 0.0)
        self.centre_region = bool(centre_region)

    def head_options(self) -> dict[str, Any]:
        return {
            **super().head_options(),
            "centre_region": self.centre_region,
            "detail": self.detail,
        }

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """[N, C, H, W] in physical units -> ``heatmap``, ``size``, ``offset`` (see class doc)."""
        if self.small_target_stem is None:
            f = self.trunk(self.features(x))  # [N, C, H/4, W/4]
        else:
            xn = self.normalize(x)
            f = self.trunk(self.small_target_stem(xn, self.decoder_map(xn)))
        return {
            "heatmap": self.heatmap_head(f).sigmoid(),
            # Clamp: exp(9) = 8100 px bounds the output and keeps the graph free of inf.
            "size": self.size_head(f).clamp(max=9.0).exp(),
            "offset": self._offset(self.offset_head(f)),
        }

    def _offset(self, raw: torch.Tensor) -> torch.Tensor:
        if not self.centre_region:
            return raw.sigmoid()
        # 0.5 + raw: starts at the cell's middle; +-64 cells (256 px at stride 4) reaches the
        # centre from anywhere on a 500 px hull, and keeps the graph bounded.
        return (raw + 0.5).clamp(-64.0, 64.0)

    def export_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self(x)
        return tuple(out[k] for k in self.output_names)


class ClassificationModel(_TaskModel):
    """Image classification: pooled tokens -> LayerNorm -> Linear.

    Args:
        encoder_config: encoder and data configuration.
        num_classes: number of classes K.
        linear_probe: freeze the encoder (kept in eval mode) and train the head only.
        pool: ``mean`` of the patch tokens (default, as MAE fine-tuning) or ``cls``.
        class_names: names by class index (default ``class_0, ...``).
    """

    task = "classification"
    output_names = ("probabilities",)

    def __init__(
        self,
        encoder_config: ModelConfig,
        num_classes: int,
        linear_probe: bool = False,
        pool: str = "mean",
        class_names: Sequence[str] | None = None,
    ) -> None:
        default = [f"class_{i}" for i in range(num_classes)]
        super().__init__(encoder_config, _class_names(class_names, num_classes, default))
        if pool not in ("mean", "cls"):
            raise ConfigError(f"pool must be 'mean' or 'cls', got {pool!r}")
        self.pool = pool
        self.linear_probe = linear_probe
        d = encoder_config.embed_dim
        self.head_norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.01)  # MAE's head init
        nn.init.zeros_(self.head.bias)
        if linear_probe:
            self.encoder.requires_grad_(False)

    def head_options(self) -> dict[str, Any]:
        return {"linear_probe": self.linear_probe, "pool": self.pool}

    def train(self, mode: bool = True) -> ClassificationModel:
        super().train(mode)
        if self.linear_probe:
            self.encoder.eval()  # a frozen encoder must not drop paths
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] in physical units -> logits [N, K]."""
        tokens = self.encoder.forward_features(self.normalize(x))  # [N, 1+L, D]
        pooled = tokens[:, 1:].mean(dim=1) if self.pool == "mean" else tokens[:, 0]  # [N, D]
        return self.head(self.head_norm(pooled))

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax class probabilities [N, K]."""
        return self(x).softmax(dim=-1)

    def export_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (self.predict_proba(x),)


TaskModel = SegmentationModel | DetectionModel | ClassificationModel


def build_task_model(task: str, config: ModelConfig, num_classes: int, **kwargs: Any) -> TaskModel:
    """Task model by name; ``kwargs`` go to its constructor (e.g. ``class_names``)."""
    models = {
        "segmentation": SegmentationModel,
        "detection": DetectionModel,
        "classification": ClassificationModel,
    }
    if task not in models:
        raise ConfigError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    return models[task](config, num_classes, **kwargs)
