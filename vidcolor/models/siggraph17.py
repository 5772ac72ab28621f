"""SIGGRAPH17 colorization network (Zhang et al., "Real-Time User-Guided Image Colorization").

Layer names and shapes match the released weights ``siggraph17-df00044c.pth``. vidcolor runs
it without user hints (ab hints and mask zero) and uses its regression output, so it is a
``regression`` model: decodings over bins do not apply to it.
"""

from __future__ import annotations

import torch
from torch import nn

from vidcolor.color import AB_NORM
from vidcolor.models.base import ColorNet
from vidcolor.models.eccv16 import conv_stack


class SIGGRAPH17(ColorNet):
    """Lightness ``(B, 1, H, W)`` -> ab ``(B, 2, H, W)`` in Lab units (H, W multiples of 8)."""

    architecture = "siggraph17"
    kind = "regression"
    output_stride = 1
    num_classes = 529

    def __init__(self) -> None:
        super().__init__()
        self.model1 = nn.Sequential(*conv_stack([4, 64, 64]))
        self.model2 = nn.Sequential(*conv_stack([64, 128, 128]))
        self.model3 = nn.Sequential(*conv_stack([128, 256, 256, 256]))
        self.model4 = nn.Sequential(*conv_stack([256, 512, 512, 512]))
        self.model5 = nn.Sequential(*conv_stack([512, 512, 512, 512], dilation=2))
        self.model6 = nn.Sequential(*conv_stack([512, 512, 512, 512], dilation=2))
        self.model7 = nn.Sequential(*conv_stack([512, 512, 512, 512]))
        self.model8up = nn.Sequential(nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1))
        self.model3short8 = nn.Sequential(nn.Conv2d(256, 256, 3, padding=1))
        self.model8 = nn.Sequential(nn.ReLU(True), *conv_stack([256, 256, 256]))
        self.model9up = nn.Sequential(nn.ConvTranspose2d(256, 128, 4, stride=2, padding=1))
        self.model2short9 = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1))
        self.model9 = nn.Sequential(nn.ReLU(True), *conv_stack([128, 128]))
        self.model10up = nn.Sequential(nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1))
        self.model1short10 = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1))
        self.model10 = nn.Sequential(nn.ReLU(True), nn.Conv2d(128, 128, 3, padding=1), nn.LeakyReLU(0.2))
        self.model_class = nn.Sequential(nn.Conv2d(256, self.num_classes, 1))
        self.model_out = nn.Sequential(nn.Conv2d(128, 2, 1), nn.Tanh())

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        hints = torch.zeros_like(lightness).expand(-1, 3, -1, -1)
        conv1 = self.model1(torch.cat((lightness, hints), dim=1))
        conv2 = self.model2(conv1[:, :, ::2, ::2])
        conv3 = self.model3(conv2[:, :, ::2, ::2])
        x = self.model4(conv3[:, :, ::2, ::2])
        x = self.model7(self.model6(self.model5(x)))
        x = self.model8(self.model8up(x) + self.model3short8(conv3))
        x = self.model9(self.model9up(x) + self.model2short9(conv2))
        x = self.model10(self.model10up(x) + self.model1short10(conv1))
        return self.model_out(x) * AB_NORM
