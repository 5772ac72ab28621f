"""A network, its bins and a decoding: lightness batches in, ab batches out."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch.nn import functional

from vidcolor.bins import ANNEAL_TEMPERATURE, DECODINGS, decode
from vidcolor.color import normalize_lightness
from vidcolor.errors import VidcolorError
from vidcolor.models.base import ColorNet

DEFAULT_SIZE = 256


@dataclass(frozen=True)
class DecodeSettings:
    """How a distribution over bins becomes a colour (``method`` one of ``DECODINGS``)."""

    method: str = "annealed"
    temperature: float = ANNEAL_TEMPERATURE


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu`` / ``cuda`` / ``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VidcolorError("--device cuda was asked for, but no CUDA GPU is available")
    return device


class Colorizer:
    """Runs a :class:`ColorNet` at a fixed square input size and decodes its output.

    Args:
        model: the network (moved to ``device``, eval mode).
        device: where the network runs.
        size: the network's input side in pixels (a multiple of 16).
        decode: the decoding of classification outputs.
        half: run under fp16/bf16 autocast on CUDA (ignored on the CPU).
    """

    def __init__(
        self,
        model: ColorNet,
        device: torch.device | str = "cpu",
        size: int = DEFAULT_SIZE,
        decode: DecodeSettings | None = None,
        half: bool = True,
    ) -> None:
        if size < 16 or size % 16:
            raise VidcolorError(f"--size must be a positive multiple of 16, got {size}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.size = size
        self.decode = decode or DecodeSettings()
        if self.decode.method not in DECODINGS:
            raise VidcolorError(f"unknown decoding {self.decode.method!r}; choose from {', '.join(DECODINGS)}")
        self.half = half and self.device.type == "cuda"
        self.autocast_dtype = torch.bfloat16 if self.half and torch.cuda.is_bf16_supported() else torch.float16

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.half:
            return torch.autocast("cuda", dtype=self.autocast_dtype)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def logits(self, lightness: torch.Tensor) -> torch.Tensor:
        """Network output for lightness at any resolution.

        Args:
            lightness: ``(B, 1, H, W)`` L in [0, 100] (any device; moved to ``self.device``).
        Returns:
            ``(B, Q, s/4, s/4)`` float32 logits (classification) or ``(B, 2, s', s')`` ab
            (regression), with s = ``self.size``.
        """
        lightness = lightness.to(self.device, non_blocking=True).float()
        if lightness.shape[-2:] != (self.size, self.size):
            lightness = functional.interpolate(
                lightness, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
            )
        with self._autocast():
            out = self.model(normalize_lightness(lightness))
        return out.float()

    @torch.inference_mode()
    def ab_lowres(self, lightness: torch.Tensor) -> torch.Tensor:
        """ab at the network's output resolution: ``(B, 2, h, w)`` in Lab units."""
        out = self.logits(lightness)
        if self.model.kind == "regression":
            return out
        return decode(out, self.model.bins, self.decode.method, self.decode.temperature)

    @torch.inference_mode()
    def ab(self, lightness: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """ab for each frame, upsampled to ``size`` (default: the input's H, W).

        Args:
            lightness: ``(B, 1, H, W)`` L in [0, 100].
            size: output ``(height, width)``.
        Returns:
            ``(B, 2, height, width)`` ab in Lab units on ``self.device``.
        """
        return upsample_ab(self.ab_lowres(lightness), size or tuple(lightness.shape[-2:]))


def upsample_ab(ab: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of ``(B, 2, h, w)`` ab to ``size`` = (height, width)."""
    if tuple(ab.shape[-2:]) == tuple(size):
        return ab
    return functional.interpolate(ab, size=size, mode="bilinear", align_corners=False)
