"""From a network's output to colours: the decodings, reference weighting, and a film's state.

A :class:`Decoder` is stateless: it turns one batch of network output into ab. What links the
frames of one film (the previous frame's distributions and lightness, the scene cuts seen)
lives in a :class:`FilmState` that the film's driver creates and passes with every batch, in
film order. Photos pass no state, so no photo's colours depend on what was decoded before it.

The temporal link follows the motion (:mod:`vidcolor.motion`): the previous frame's final
distributions are warped along the optical flow from it to the current frame, and each cell's
link is weighted by the warp's confidence (the warped luma's match; 0 where the content was not
in the previous frame), so that moving content takes its own past colours and occluded or newly
visible content the network's. Per decoding:

* ``mrf``: each pixel's per-channel marginals are fused on the log scale,
  ``p^(1 - w) p_carried^w`` (:func:`fuse_log`), ``w = MRFSettings.temporal_weight`` x
  confidence, and the fused marginals are the Potts model's unary and the next frame's past;
* the others: each cell's distribution over the bins is blended, ``(1 - w) p + w p_carried``,
  ``w = DecodeSettings.blend`` x confidence.

Both are convex in the carried distribution and act before decoding, so a still shot keeps its
first frame's colours (no build-up along a shot, ``tests/test_temporal_link.py``), and both
reset at a scene cut (:func:`is_scene_cut`, threshold ``MRFSettings.scene_cut``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional

from vidcolor.bins import (
    ANNEAL_TEMPERATURE,
    DECODINGS,
    bins_last,
    channel_marginals,
    decode,
    decode_probs,
    grid_cells,
    joint_marginals,
)
from vidcolor.errors import VidcolorError
from vidcolor.guidance import GUIDE_STRENGTH, ShotGuide, steer
from vidcolor.hints import Hints, hint_guide
from vidcolor.motion import FLOW_SCALE, flow_luma, motion_prior, warp_maps
from vidcolor.mrf import MRFSettings, histogram_transfer, readout, refine

ALL_DECODINGS = (*DECODINGS, "mrf")
# The largest weight of the carried distribution in the mean / annealed decodings: 0.98 took the
# 7 colour clips' flicker from 1.14x to 1.07x the truth's CDC (worst clip 1.61x -> 1.41x) at
# -0.07 dB against 0.95 (session 17, benchmarks/RESULTS.md).
BLEND = 0.98
REFERENCE_FLOOR = 1e-3  # added to a reference histogram's shares so that no colour is ruled out
CUT_WARP_CONFIDENCE = 0.3  # a large change whose warped previous frame matches at least this well is motion


@dataclass(frozen=True)
class DecodeSettings:
    """How a distribution over bins becomes a colour.

    ``method``: one of ``ALL_DECODINGS``; ``temperature``: the temperature T the joint
    distribution is read at, softmax(logits / T), by ``annealed`` (the annealed mean) and ``mrf``
    (the marginals its unary and temporal link take; T < 1 lets a near-neutral cell's neutral
    bins win over the mean of warm ones, so fewer casts); ``mrf``: the Potts
    model's constants for ``mrf`` (its ``scene_cut`` serves every decoding); ``temporal``: link
    each frame of a film to the previous one; ``reference``: a reference colour image's ab
    histogram ``(23, 23)`` (counts over the grid) that reweights every distribution (global
    histogram transfer); ``blend``: the largest weight of the previous frame's distributions,
    carried along the motion, in the temporal link of ``mean``/``annealed``/``mode`` (``mrf``
    has its own, ``MRFSettings.temporal_weight``).
    """

    method: str = "annealed"
    temperature: float = ANNEAL_TEMPERATURE
    mrf: MRFSettings = MRFSettings()
    temporal: bool = True
    blend: float = BLEND
    reference: np.ndarray | None = None


Warp = tuple[np.ndarray, np.ndarray, torch.Tensor]  # sample positions x, y and the warp's confidence


@dataclass(frozen=True)
class _FrameExtras:
    """What a batch's frames bring for keyframes: their times and matching descriptors."""

    times: list[float] | None
    features: torch.Tensor | None
    fixed: tuple[torch.Tensor, torch.Tensor] | None = None  # a photo's hints: one guide for its one frame

    def time(self, i: int) -> float | None:
        return self.times[i] if self.times is not None else None

    def feature(self, i: int) -> torch.Tensor | None:
        return self.features[i] if self.features is not None else None


@dataclass
class FilmState:
    """What carries over from one frame of a film to the next; one per film, frames in order.

    ``previous``: the previous frame's fused distributions, ``(h, w, Q)`` tensor (blend) or
    ``(h, w, 2 K)`` float64 tensor of the channel marginals (MRF); ``previous_lightness``: its
    ``(h, w)`` L in [0, 1];
    ``previous_luma``: its ``(FLOW_SCALE h, FLOW_SCALE w)`` uint8 plane the optical flow is
    computed on; ``cut_count``: scene cuts so far, a 0-d tensor on the decoding device (read
    :attr:`cuts`); ``guide``: the film's keyframes and their carried guide
    (:class:`~vidcolor.guidance.ShotGuide`), or None.
    """

    previous: torch.Tensor | None = None
    previous_lightness: torch.Tensor | None = None
    previous_luma: np.ndarray | None = None
    cut_count: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.long))
    guide: ShotGuide | None = None

    @property
    def cuts(self) -> int:
        """Scene cuts found so far (one host sync)."""
        return int(self.cut_count)


def fuse_log(current: np.ndarray, carried: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted geometric mean of two per-channel distributions, renormalised.

    Args:
        current, carried: ``(C, K, h, w)`` probabilities over each channel's K bins.
        weight: ``(h, w)`` the carried distribution's weight in [0, 1].
    Returns:
        ``(C, K, h, w)`` float64 ``current^(1 - w) carried^w / sum_k``.
    """
    floor = 1e-6
    log_current = np.log(np.maximum(current, floor))
    log_fused = log_current + weight * (np.log(np.maximum(carried, floor)) - log_current)
    fused = np.exp(log_fused - log_fused.max(axis=1, keepdims=True))
    return fused / fused.sum(axis=1, keepdims=True)


def is_scene_cut(lightness: torch.Tensor, previous_lightness: torch.Tensor, threshold: float) -> torch.Tensor:
    """A 0-d bool tensor: the mean absolute change of ``(h, w)`` L in [0, 1] exceeds ``threshold``."""
    return (lightness.float() - previous_lightness.float()).abs().mean() > threshold


class Decoder:
    """Decodes a network's output with fixed settings.

    Args:
        settings: the decoding.
        bins: ``(Q, 2)`` ab centres of the network's bins (ignored for regression).
        kind: the network's ``kind``, ``classification`` or ``regression``.
        device: where the network's output lives.
    """

    def __init__(self, settings: DecodeSettings, bins: torch.Tensor, kind: str, device: torch.device) -> None:
        if settings.method not in ALL_DECODINGS:
            raise VidcolorError(f"unknown decoding {settings.method!r}; choose from {', '.join(ALL_DECODINGS)}")
        if settings.method in ("annealed", "mrf") and not settings.temperature > 0:
            raise VidcolorError(f"the temperature must be positive, got {settings.temperature}")
        if kind == "regression" and (settings.method in ("mode", "mrf") or settings.reference is not None):
            what = "--reference" if settings.reference is not None else f"--decode {settings.method}"
            raise VidcolorError(f"this model predicts ab directly: {what} needs a classification model")
        self.settings, self.bins, self.kind, self.device = settings, bins, kind, device
        reference = settings.reference
        # --reference: mrf weights the per-channel marginals, the others the joint bins (never both)
        self.channel_reference = None
        self.reference_log_weights = None
        if reference is not None and settings.method == "mrf":
            self.channel_reference = (reference.sum(axis=1), reference.sum(axis=0))
        elif reference is not None:
            share = torch.from_numpy(reference / max(reference.sum(), 1e-12)).float()
            cells = grid_cells(bins)
            self.reference_log_weights = torch.log(share[cells[:, 0], cells[:, 1]] + REFERENCE_FLOOR).to(device)

    def decode(
        self,
        out: torch.Tensor,
        lightness: torch.Tensor,
        state: FilmState | None = None,
        times: list[float] | None = None,
        features: torch.Tensor | None = None,
        hints: Hints | None = None,
    ) -> torch.Tensor:
        """ab of a batch of frames.

        Args:
            out: ``(B, Q, h, w)`` logits (regression: ``(B, 2, h, w)`` ab, returned as is).
            lightness: ``(B, 1, H, W)`` L in [0, 100] of the same frames.
            state: the film's state, advanced over the batch; None decodes each frame on its own
                (photos, or ``temporal=False``).
            times: each frame's film time in seconds (for the keyframes of ``state.guide``).
            features: ``(B, C, h/4, w/4)`` the frames' matching descriptors (with ``state.guide``).
            hints: a photo's colour hints (one frame, no state), spread and fused before decoding.
        Returns:
            ``(B, 2, h, w)`` ab in Lab units on ``out``'s device.
        """
        if self.kind == "regression":
            return out
        if self.reference_log_weights is not None:
            out = out + self.reference_log_weights[None, :, None, None]
        if state is None and self.settings.method != "mrf" and hints is None:
            return decode(out, self.bins, self.settings.method, self.settings.temperature)
        lightness = lightness.to(out.device).float()
        small = functional.interpolate(lightness, size=out.shape[-2:], mode="area") / 100
        sides = zip(out.shape[-2:], lightness.shape[-2:], strict=True)
        flow_size = tuple(min(FLOW_SCALE * side, full) for side, full in sides)
        planes = flow_luma(lightness[:, 0] / 100, flow_size) if state is not None else None
        fixed = hint_guide(hints, small[0, 0].cpu(), self.bins, self.settings.mrf.sigma) if hints is not None else None
        frames = _FrameExtras(times, features, fixed)
        if self.settings.method == "mrf":
            return self._refine(out, small, state, planes, frames)
        return self._blend(out, small, state, planes, frames)

    def _link(
        self, lightness: torch.Tensor, state: FilmState | None, luma: np.ndarray | None, device: torch.device
    ) -> tuple[bool | None, Warp | None]:
        """Whether this frame links to the previous frame's state (None without one, False at a
        scene cut), and the motion from it on the state's grid (None without a previous frame):
        sample positions ``x``, ``y`` and the warp's ``(h, w)`` confidence in [0, 1] on ``device``.

        A cut is a large change of lightness (``scene_cut``) that the motion does not explain:
        a fast pan or zoom changes as much, but its warped previous frame still matches
        (mean warp confidence >= ``CUT_WARP_CONFIDENCE``; measured on the shared clips: real
        cuts 0.02-0.13, fast pans and zooms 0.57-0.69). The confidence is the host's, so the
        lightness (on the device) is read back only when the motion does not explain the frame.
        """
        if state is None or state.previous is None:
            return None, None
        x, y, confidence = motion_prior(state.previous_luma, luma, tuple(state.previous.shape[:2]))
        explained = float(confidence.mean()) >= CUT_WARP_CONFIDENCE
        cut = not explained and bool(is_scene_cut(lightness, state.previous_lightness, self.settings.mrf.scene_cut))
        state.cut_count = state.cut_count + int(cut)
        return not cut, (x, y, torch.from_numpy(confidence).to(device))

    @staticmethod
    def _guided(
        state: FilmState | None, i: int, lightness: torch.Tensor, linked, warp: Warp | None, frames: _FrameExtras
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Frame ``i``'s guide (a photo's hints, or the film's keyframes) and its confidence (None,
        None without either)."""
        if frames.fixed is not None:
            return frames.fixed
        if state is None or state.guide is None:
            return None, None
        cut = linked is False
        return state.guide.guide(frames.time(i), lightness, frames.feature(i), cut, None if cut else warp)

    def _refine(
        self,
        logits: torch.Tensor,
        small: torch.Tensor,
        state: FilmState | None,
        planes: np.ndarray | None,
        frames: _FrameExtras,
    ) -> torch.Tensor:
        temperature = self.settings.temperature  # the marginals of the joint read at T, as the annealed mean reads it
        if logits.device.type == "cpu":  # frame by frame, so that each frame's maps stay in cache
            probs = [channel_marginals(frame, self.bins, temperature)[0].numpy() for frame in logits.split(1)]
        else:  # the whole batch on the device, then one transfer
            probs = list(channel_marginals(logits, self.bins, temperature).cpu().numpy())
        ab = []
        # the MRF runs on the host: the batch's lightness crosses once, and the state keeps host tensors
        for i, (frame_probs, lightness) in enumerate(zip(probs, small[:, 0].cpu(), strict=True)):
            if self.channel_reference is not None:
                frame_probs = np.stack(
                    [histogram_transfer(p, h) for p, h in zip(frame_probs, self.channel_reference, strict=True)]
                )
            channels, k, height, width = frame_probs.shape
            linked, warp = self._link(lightness, state, planes[i] if planes is not None else None, torch.device("cpu"))
            if linked:
                carried = warp_maps(state.previous, warp[0], warp[1])
                carried = carried.numpy().transpose(2, 0, 1).reshape(channels, k, height, width)
                weight = self.settings.mrf.temporal_weight * warp[2].numpy()
                frame_probs = fuse_log(frame_probs, carried, weight)
            guide, confidence = self._guided(state, i, lightness, linked, warp, frames)
            if guide is not None:
                marginals = joint_marginals(guide, self.bins).cpu().numpy()
                frame_probs = fuse_log(frame_probs, marginals, GUIDE_STRENGTH * confidence.cpu().numpy())
            if state is not None:
                marginals = np.ascontiguousarray(frame_probs.reshape(channels * k, height, width).transpose(1, 2, 0))
                state.previous, state.previous_lightness = torch.from_numpy(marginals), lightness
                state.previous_luma = planes[i]
            q = refine(frame_probs, lightness.numpy(), self.settings.mrf)
            ab.append(readout(q, self.settings.mrf.readout))
        return torch.from_numpy(np.stack(ab)).to(logits.device)

    def _blend(
        self,
        logits: torch.Tensor,
        small: torch.Tensor,
        state: FilmState | None,
        planes: np.ndarray | None,
        frames: _FrameExtras,
    ) -> torch.Tensor:
        """Each frame's distributions blended with the previous frame's carried along the motion,
        and steered by its guide (hints or keyframes).

        Frame by frame (each frame's Q-bin maps stay in cache) with the bins last (contiguous
        softmax, a broadcast lerp: about 2x faster than over the outer dimension, measured).
        """
        ab = []
        for i in range(len(logits)):
            current, lightness = torch.softmax(bins_last(logits[i : i + 1])[0], dim=-1), small[i, 0]
            linked, warp = self._link(lightness, state, planes[i] if planes is not None else None, current.device)
            if linked:
                weight = self.settings.blend * warp[2]
                current = torch.lerp(current, warp_maps(state.previous, warp[0], warp[1]), weight[..., None])
            guide, confidence = self._guided(state, i, lightness, linked, warp, frames)
            if guide is not None:
                current = steer(current, guide.to(current.device), confidence.to(current.device))
            if state is not None:
                state.previous, state.previous_lightness, state.previous_luma = current, lightness, planes[i]
            ab.append(decode_probs(current, self.bins, self.settings.method, self.settings.temperature))
        return torch.stack(ab).permute(0, 3, 1, 2).contiguous()
