"""Colorization networks (vidnet, lite0-unet, eccv16, siggraph17) and their weight files."""

from vidcolor.models.base import ColorNet
from vidcolor.models.eccv16 import ECCV16
from vidcolor.models.lite0_unet import Lite0UNet, Lite0UNetConfig
from vidcolor.models.loading import (
    DEFAULT_WEIGHTS,
    TRAINABLE,
    build_model,
    load_model,
    model_card,
    save_model,
)
from vidcolor.models.siggraph17 import SIGGRAPH17
from vidcolor.models.vidnet import VidNet, VidNetConfig

__all__ = [
    "ColorNet",
    "DEFAULT_WEIGHTS",
    "ECCV16",
    "Lite0UNet",
    "Lite0UNetConfig",
    "SIGGRAPH17",
    "TRAINABLE",
    "VidNet",
    "VidNetConfig",
    "build_model",
    "load_model",
    "model_card",
    "save_model",
]
