"""A network, its bins and a decoding: lightness batches in, ab batches out."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional

from vidcolor.bins import ANNEAL_TEMPERATURE, DECODINGS, channel_marginals, decode, decode_probs, grid_cells
from vidcolor.color import normalize_lightness
from vidcolor.errors import VidcolorError
from vidcolor.models.base import ColorNet
from vidcolor.mrf import SCENE_CUT, MRFSettings, PottsRefiner

DEFAULT_SIZE = 256


ALL_DECODINGS = (*DECODINGS, "mrf")
# The cheap temporal form for mean/annealed/mode: each pixel's distribution is blended with the
# previous frame's (blended) one with weight BLEND * exp(-(L_t - L_t-1)^2 / BLEND_SIGMA), L in [0, 1].
BLEND = 0.5
BLEND_SIGMA = 1e-3


@dataclass(frozen=True)
class DecodeSettings:
    """How a distribution over bins becomes a colour.

    ``method``: one of ``ALL_DECODINGS``; ``temperature``: for ``annealed``; ``mrf``: the Potts
    model's constants for ``mrf``; ``temporal``: link each frame of a film to the previous one
    (the MRF's temporal term, or a lightness-weighted blend of distributions for the others);
    ``reference``: a reference colour image's ab histogram ``(23, 23)`` (counts over the grid)
    that reweights every distribution (global histogram transfer).
    """

    method: str = "annealed"
    temperature: float = ANNEAL_TEMPERATURE
    mrf: MRFSettings = MRFSettings()
    temporal: bool = True
    reference: np.ndarray | None = None


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
        multiple = model.input_multiple
        if size < multiple or size % multiple:
            raise VidcolorError(f"--size must be a positive multiple of {multiple} for this model, got {size}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.size = size
        self.decode = decode or DecodeSettings()
        if self.decode.method not in ALL_DECODINGS:
            raise VidcolorError(f"unknown decoding {self.decode.method!r}; choose from {', '.join(ALL_DECODINGS)}")
        if model.kind == "regression" and (self.decode.method == "mrf" or self.decode.reference is not None):
            raise VidcolorError(
                "this model predicts ab directly: --decode mrf and --reference need a classification model"
            )
        reference = self.decode.reference
        self.refiner = None
        if self.decode.method == "mrf":
            channel_reference = None
            if reference is not None:
                channel_reference = (reference.sum(axis=1), reference.sum(axis=0))
            self.refiner = PottsRefiner(self.decode.mrf, temporal=self.decode.temporal, reference=channel_reference)
        # --reference: mrf weights the per-channel marginals (in PottsRefiner), the others the joint bins
        self.reference_log_weights = None
        if reference is not None and self.refiner is None:
            cells = grid_cells(model.bins)
            share = torch.from_numpy(reference / max(reference.sum(), 1e-12)).float()
            self.reference_log_weights = torch.log(share[cells[:, 0], cells[:, 1]] + 1e-3).to(self.device)
        self.reset_sequence()
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

    def reset_sequence(self) -> None:
        """Forget the previous frame: call before each film or photo."""
        self._previous_probs: torch.Tensor | None = None
        self._previous_lightness: torch.Tensor | None = None
        self._cut_count = torch.zeros((), dtype=torch.long, device=self.device)  # no host sync per frame
        if self.refiner is not None:
            self.refiner.reset()
            self.refiner.cuts = 0

    @torch.inference_mode()
    def ab_lowres(self, lightness: torch.Tensor) -> torch.Tensor:
        """ab at the network's output resolution for consecutive frames.

        Args:
            lightness: ``(B, 1, H, W)`` L in [0, 100]; frames in film order (the temporal
                state carries over from the previous call until :meth:`reset_sequence`).
        Returns:
            ``(B, 2, h, w)`` ab in Lab units on ``self.device``.
        """
        return self.decode_output(self.logits(lightness), lightness)

    @torch.inference_mode()
    def decode_output(self, out: torch.Tensor, lightness: torch.Tensor) -> torch.Tensor:
        """Decode network output ``(B, Q, h, w)`` (regression: ab, returned as is) of frames with
        lightness ``(B, 1, H, W)`` in [0, 100] into ``(B, 2, h, w)`` ab, advancing the temporal state."""
        if self.model.kind == "regression":
            return out
        if self.reference_log_weights is not None:
            out = out + self.reference_log_weights[None, :, None, None]
        if self.refiner is not None or self.decode.temporal:
            small = functional.interpolate(lightness.to(self.device).float(), size=out.shape[-2:], mode="area") / 100
            if self.refiner is not None:
                return self._refine(out, small)
            return self._blend(out, small)
        return decode(out, self.model.bins, self.decode.method, self.decode.temperature)

    def _refine(self, logits: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
        lightness = small[:, 0].cpu().numpy()
        if logits.device.type == "cpu":  # frame by frame, so that each frame's maps stay in cache
            probs = [channel_marginals(frame, self.model.bins)[0].numpy() for frame in logits.split(1)]
        else:  # the whole batch on the device, then one transfer
            probs = channel_marginals(logits, self.model.bins).cpu().numpy()
        ab = np.stack([self.refiner.refine(frame, light) for frame, light in zip(probs, lightness, strict=True)])
        return torch.from_numpy(ab).to(self.device)

    def _blend(self, logits: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
        """Decode each frame's distributions blended with the previous frame's (reset at cuts): ``(B, 2, h, w)`` ab.

        Stays on the device: scene cuts are kept as tensors and counted only when asked.
        """
        ab = []
        for i in range(len(logits)):  # frame by frame: each frame's Q-bin maps stay in cache
            current, lightness = torch.softmax(logits[i], dim=0), small[i, 0]
            previous = self._previous_probs
            if previous is not None:
                change = lightness - self._previous_lightness
                cut = change.abs().mean() > SCENE_CUT
                self._cut_count = self._cut_count + cut
                weight = BLEND * torch.exp(-(change**2) / BLEND_SIGMA) * (~cut)
                current = (1 - weight) * current + weight * previous
            self._previous_probs, self._previous_lightness = current, lightness
            ab.append(decode_probs(current[None], self.model.bins, self.decode.method, self.decode.temperature))
        return torch.cat(ab)

    @property
    def cuts(self) -> int:
        """Scene cuts found since :meth:`reset_sequence`."""
        if self.refiner is not None:
            return self.refiner.cuts
        return int(self._cut_count)

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
