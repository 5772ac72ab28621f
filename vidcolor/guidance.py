"""Guided colours: keyframes steering the frames of their shots.

A keyframe (:mod:`vidcolor.keyframes`) becomes a :class:`KeyMemory`: its colours as a
distribution over the bins at the network's output grid, and, per cell of 1/16 of the network input, the
network's own encoder features (:meth:`~vidcolor.models.base.ColorNet.features`), lightness and
colours. Each frame of the keyframe's shot gets a *guide*, a distribution over the bins with a
confidence per cell, from two sources:

- the motion: the previous frame's guide warped along the optical flow (the same warp as the
  temporal link, :mod:`vidcolor.motion`), its confidence multiplied by the warp's and by
  ``CARRY_DECAY`` a frame; on the keyframe's own frame (the keyframe is that frame: its
  lightness matches) the keyframe's colours with confidence 1;
- matching (:func:`match_keyframe`), where the motion loses track: each cell's colour is a soft
  vote of its ``MATCH_TOP_K`` most similar keyframe cells (cosine similarity of the features,
  less ``LUMA_WEIGHT`` x the lightness difference as a tie-breaker; softmax at
  ``MATCH_TEMPERATURE``), the best similarity mapped to a confidence
  (``CONFIDENT_SIMILARITY``), scaled down for the whole frame when its view shares little with
  the keyframe's (the frame's mean best similarity, ``SHARED_VIEW``): a pan onto content the
  keyframe never showed still finds a few cells that look alike, and their colours are guesses.

The guide enters beside the network's distribution before decoding, ``lerp(p, guide,
GUIDE_STRENGTH x confidence)`` (:func:`steer`), where the temporal link then carries it on;
where the confidence is low the automatic colours remain. A model with no features
(eccv16, siggraph17) is guided by the motion alone.

:class:`ShotGuide` is the state a film carries for this from frame to frame (inside its
:class:`~vidcolor.decoding.FilmState`): which keyframe guides the current shot, and the
guide carried from the previous frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional

from vidcolor.motion import warp_maps

MATCH_TOP_K = 8
MATCH_TEMPERATURE = 0.05
LUMA_WEIGHT = 1.0  # L in [0, 1]
CONFIDENT_SIMILARITY = (0.55, 0.85)  # best similarity giving confidence 0, and 1
# the frame's mean best similarity at which the keyframe shows none of its view, and all of it
# (measured, first frame as keyframe: frames of the same view 0.61-0.79, pans onto other content 0.34-0.47)
SHARED_VIEW = (0.45, 0.6)
GUIDE_STRENGTH = 0.95
CARRY_DECAY = 0.98
EXACT_LIGHTNESS = 0.02  # mean |L - L_key| (L in [0, 1]) below which a keyframe is its frame


@dataclass
class KeyMemory:
    """A keyframe as the guide needs it, for frames on a network output grid of ``(h, w)``.

    ``time``: the film time it colours (seconds); ``rgb``: ``(H, W, 3)`` float32 in [0, 1] at
    the film's size; ``lightness``: ``(h, w)`` L in [0, 1]; ``colours``: ``(h, w, Q)`` its
    colours as a distribution over the bins; ``features``: ``(n, C)`` the descriptors of its
    ``n`` cells (1/16 of the network input; None: the model has none); ``cell_lightness``: ``(n,)``;
    ``cell_colours``: ``(n, Q)``.
    """

    time: float
    rgb: np.ndarray
    lightness: torch.Tensor
    colours: torch.Tensor
    features: torch.Tensor | None
    cell_lightness: torch.Tensor
    cell_colours: torch.Tensor


def cells(maps: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``(h, w, C)`` maps (channels last) area-averaged to ``shape`` cells: ``(cells, C)``."""
    pooled = functional.adaptive_avg_pool2d(maps.permute(2, 0, 1)[None], shape)[0]
    return pooled.flatten(1).T.contiguous()


def match_keyframe(
    features: torch.Tensor, lightness: torch.Tensor, key: KeyMemory
) -> tuple[torch.Tensor, torch.Tensor]:
    """The matching guide of one frame.

    Args:
        features: ``(C, h8, w8)`` the frame's descriptors (each half of unit length).
        lightness: ``(h, w)`` the frame's L in [0, 1] on the output grid.
        key: the keyframe (with features).
    Returns:
        ``(h, w, Q)`` guide distributions and ``(h, w)`` confidence in [0, 1].
    """
    grid = features.shape[-2:]
    frame = features.flatten(1).T  # (m, C)
    halves = 2.0  # two unit-length descriptors side by side: the dot product is in [-2, 2]
    similarity = frame @ key.features.T / halves
    frame_lightness = cells(lightness[..., None], grid)[:, 0]
    similarity = similarity - LUMA_WEIGHT * (frame_lightness[:, None] - key.cell_lightness[None, :]).abs()
    best, index = similarity.topk(min(MATCH_TOP_K, similarity.shape[1]), dim=1)
    weights = torch.softmax(best / MATCH_TEMPERATURE, dim=1)
    guide = torch.einsum("mk,mkq->mq", weights, key.cell_colours[index])
    confidence = ramp(best[:, 0], CONFIDENT_SIMILARITY) * shared_view(best[:, 0])
    maps = torch.cat((guide, confidence[:, None]), dim=1).T.reshape(-1, *grid)
    maps = functional.interpolate(maps[None], size=tuple(lightness.shape), mode="bilinear", align_corners=False)[0]
    guide = maps[:-1].permute(1, 2, 0)
    return guide / guide.sum(dim=-1, keepdim=True).clamp_min(1e-12), maps[-1].clamp(0.0, 1.0)


def ramp(value: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    """``value`` mapped linearly from ``bounds`` (low, high) to [0, 1], clamped; same shape."""
    low, high = bounds
    return ((value - low) / (high - low)).clamp(0.0, 1.0)


def shared_view(best: torch.Tensor) -> torch.Tensor:
    """How much of a frame's view the keyframe shows, a 0-d tensor in [0, 1], from each cell's best
    similarity ``(m,)``: their mean ramped over ``SHARED_VIEW``."""
    return ramp(best.mean(), SHARED_VIEW)


def combine(
    carried: torch.Tensor | None,
    carried_confidence: torch.Tensor | None,
    matched: torch.Tensor | None,
    matched_confidence: torch.Tensor | None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The guide from the motion's and the matching's, each ``(h, w, Q)`` with ``(h, w)``
    confidence (either may be None): the motion's where it is confident, the matching's in the
    rest. Returns the guide and its confidence (None, None when neither is given)."""
    if carried is None:
        return matched, matched_confidence
    if matched is None:
        return carried, carried_confidence
    share = (1.0 - carried_confidence) * matched_confidence
    confidence = carried_confidence + share
    guide = (carried_confidence[..., None] * carried + share[..., None] * matched) / confidence.clamp_min(1e-6)[
        ..., None
    ]
    return guide, confidence


def steer(current: torch.Tensor, guide: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """``(h, w, Q)`` distributions moved towards the guide: ``lerp(current, guide, GUIDE_STRENGTH x confidence)``."""
    return torch.lerp(current, guide, (GUIDE_STRENGTH * confidence)[..., None])


@dataclass
class ShotGuide:
    """What a film carries from frame to frame for its keyframes (see the module's docstring).

    ``keys``: the keyframes by time; ``frame_seconds``: the film's frame duration;
    ``active``: the keyframe of the current shot once its frame has passed (None after a cut);
    ``carried``, ``carried_confidence``: the previous frame's guide; ``exact``: the times of
    the frames that are keyframes themselves (their chroma is the keyframe's, at full
    resolution).
    """

    keys: list[KeyMemory]
    frame_seconds: float
    active: KeyMemory | None = None
    carried: torch.Tensor | None = None
    carried_confidence: torch.Tensor | None = None
    exact: dict[float, KeyMemory] = field(default_factory=dict)

    def _keyframe_at(self, time: float) -> KeyMemory | None:
        for key in self.keys:
            if abs(key.time - time) < self.frame_seconds / 2:
                return key
        return None

    def _candidate(self, time: float) -> KeyMemory:
        """The keyframe matched against: the shot's own, else the nearest in time."""
        return self.active or min(self.keys, key=lambda key: abs(key.time - time))

    def guide(
        self,
        time: float | None,
        lightness: torch.Tensor,
        features: torch.Tensor | None,
        cut: bool,
        warp: tuple[np.ndarray, np.ndarray, torch.Tensor] | None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """This frame's guide and confidence (None, None: no guidance), advancing the state.

        Args:
            time: the frame's film time (seconds; None: unknown, matching only).
            lightness: ``(h, w)`` L in [0, 1] on the output grid.
            features: ``(C, h8, w8)`` the frame's descriptors, or None.
            cut: a scene cut before this frame (the shot's keyframe and carried guide end).
            warp: the flow from the previous frame (x, y sample positions and the ``(h, w)``
                confidence), or None (the first frame, or after a cut).
        Returns tensors on the keyframes' device (the colorizer's).
        """
        device = self.keys[0].colours.device
        lightness = lightness.to(device)
        features = features.to(device) if features is not None else None
        if cut:
            self.active, self.carried, self.carried_confidence = None, None, None
        key = self._keyframe_at(time) if time is not None else None
        if key is not None:
            self.active = key
            if (lightness - key.lightness).abs().mean() < EXACT_LIGHTNESS:
                self.exact[time] = key
                ones = torch.ones_like(lightness)
                self.carried, self.carried_confidence = key.colours, ones
                return key.colours, ones
        carried = carried_confidence = None
        if self.carried is not None and warp is not None:
            x, y, flow_confidence = warp
            both = torch.cat((self.carried, self.carried_confidence[..., None]), dim=-1)
            moved = warp_maps(both, x, y)
            carried = moved[..., :-1]
            carried_confidence = moved[..., -1] * flow_confidence.to(device) * CARRY_DECAY
        matched = matched_confidence = None
        candidate = self._candidate(time if time is not None else 0.0)
        if features is not None and candidate.features is not None:
            matched, matched_confidence = match_keyframe(features, lightness, candidate)
        guide, confidence = combine(carried, carried_confidence, matched, matched_confidence)
        self.carried, self.carried_confidence = guide, confidence
        return guide, confidence
