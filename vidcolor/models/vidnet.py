"""vidnet: vidcolor's own small colorization network (the shipped default).

An encoder to 1/16 resolution with dilated convolutions for context, then a decoder back to
1/4 resolution with additive skip connections (as in Zhang et al.'s SIGGRAPH17 network),
ending in a 1x1 convolution to Q bin logits (classification) or to ab (regression). At a
256x256 input it costs about 1.4 GMAC, so it runs at over 10 frames/s on two CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vidcolor.color import AB_NORM
from vidcolor.models.base import ColorNet, NetConfig


@dataclass(frozen=True)
class VidNetConfig(NetConfig):
    """Shape of a vidnet: channel widths at 1/2, 1/4, 1/8 and 1/16 resolution."""

    widths: tuple[int, int, int, int] = (32, 64, 128, 256)
    context_blocks: int = 3
    kind: str = "classification"
    num_bins: int = 261


def _conv(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class VidNet(ColorNet):
    """Lightness ``(B, 1, H, W)`` -> logits ``(B, Q, H/4, W/4)`` or ab ``(B, 2, H/4, W/4)``.

    H and W must be multiples of 16.
    """

    architecture = "vidnet"
    output_stride = 4

    def __init__(self, config: VidNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or VidNetConfig()
        self.kind = self.config.kind
        w1, w2, w3, w4 = self.config.widths
        self.enc1 = _conv(1, w1, stride=2)  # 1/2
        self.enc2 = nn.Sequential(_conv(w1, w2, stride=2), _conv(w2, w2))  # 1/4
        self.enc3 = nn.Sequential(_conv(w2, w3, stride=2), _conv(w3, w3))  # 1/8
        self.enc4 = nn.Sequential(
            _conv(w3, w4, stride=2),
            *[_conv(w4, w4, dilation=2 ** (i % 3)) for i in range(self.config.context_blocks)],
        )  # 1/16
        self.lateral3 = nn.Conv2d(w4, w3, 1)
        self.dec3 = _conv(w3, w3)
        self.lateral2 = nn.Conv2d(w3, w2 * 2, 1)
        self.skip2 = nn.Conv2d(w2, w2 * 2, 1)
        self.dec2 = _conv(w2 * 2, w2 * 2)
        out_channels = self.config.num_bins if self.kind == "classification" else 2
        self.head = nn.Conv2d(w2 * 2, out_channels, 1)

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        up = nn.functional.interpolate
        x1 = self.enc1(lightness)
        x2 = self.enc2(x1)
        x3 = self.enc3(x2)
        x4 = self.enc4(x3)
        y3 = self.dec3(up(self.lateral3(x4), scale_factor=2.0, mode="bilinear", align_corners=False) + x3)
        y2 = up(self.lateral2(y3), scale_factor=2.0, mode="bilinear", align_corners=False) + self.skip2(x2)
        out = self.head(self.dec2(y2))
        if self.kind == "regression":
            return out * AB_NORM
        return out

    def features(self, lightness: torch.Tensor) -> torch.Tensor:
        """The encoder's features at 1/8 and at 1/16 (upsampled), each of unit length over its
        channels, concatenated: ``(B, w3 + w4, H/8, W/8)``."""
        x3 = self.enc3(self.enc2(self.enc1(lightness)))
        x4 = nn.functional.interpolate(self.enc4(x3), size=x3.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat((nn.functional.normalize(x3, dim=1), nn.functional.normalize(x4, dim=1)), dim=1)
