"""ECCV16 colorization network (Zhang, Isola & Efros, "Colorful Image Colorization").

Layer names and shapes match the released weights ``colorization_release_v2-9b330a0b.pth``
so that file loads as is. Its last 1x1 convolution ``model_out`` (2 x 313, no bias) holds
the 313 ab bin centres divided by 110: the bins are read from it, and ``forward`` returns
the 313 logits before it so that every decoding (including the MRF) applies.
"""

from __future__ import annotations

import torch
from torch import nn

from vidcolor.color import AB_NORM
from vidcolor.models.base import ColorNet


def conv_stack(channels: list[int], *, stride_last: int = 1, dilation: int = 1, norm: bool = True) -> list[nn.Module]:
    """3x3 convolutions with ReLU between ``channels[i]`` and ``channels[i+1]``, then BatchNorm."""
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
        stride = stride_last if i == len(channels) - 2 else 1
        layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation), nn.ReLU(True)]
    if norm:
        layers.append(nn.BatchNorm2d(channels[-1]))
    return layers


class ECCV16(ColorNet):
    """Lightness ``(B, 1, H, W)`` -> 313 logits ``(B, 313, H/4, W/4)``."""

    architecture = "eccv16"
    output_stride = 4
    num_bins = 313

    def __init__(self) -> None:
        super().__init__()
        self.model1 = nn.Sequential(*conv_stack([1, 64, 64], stride_last=2))
        self.model2 = nn.Sequential(*conv_stack([64, 128, 128], stride_last=2))
        self.model3 = nn.Sequential(*conv_stack([128, 256, 256, 256], stride_last=2))
        self.model4 = nn.Sequential(*conv_stack([256, 512, 512, 512]))
        self.model5 = nn.Sequential(*conv_stack([512, 512, 512, 512], dilation=2))
        self.model6 = nn.Sequential(*conv_stack([512, 512, 512, 512], dilation=2))
        self.model7 = nn.Sequential(*conv_stack([512, 512, 512, 512]))
        self.model8 = nn.Sequential(
            nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1),
            nn.ReLU(True),
            *conv_stack([256, 256, 256], norm=False),
            nn.Conv2d(256, self.num_bins, 1),
        )
        self.model_out = nn.Conv2d(self.num_bins, 2, 1, bias=False)

    def bins_from_weights(self) -> torch.Tensor:
        """``(313, 2)`` ab bin centres read from ``model_out`` (which holds them / 110)."""
        return self.model_out.weight.detach()[:, :, 0, 0].T.float() * AB_NORM

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        x = lightness
        for block in (self.model1, self.model2, self.model3, self.model4, self.model5, self.model6):
            x = block(x)
        return self.model8(self.model7(x))
