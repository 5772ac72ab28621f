"""From a network's output to colours: the decodings, reference weighting, and a film's state.

A :class:`Decoder` is stateless: it turns one batch of network output into ab. What links the
frames of one film (the previous frame's distributions and lightness, the scene cuts seen)
lives in a :class:`FilmState` that the film's driver creates and passes with every batch, in
film order. Photos pass no state, so no photo's colours depend on what was decoded before it.

Temporal links, per decoding:

* ``mrf``: the Potts model's temporal term (:func:`vidcolor.mrf.refine` with the previous
  frame's refined distributions);
* the others: each pixel's distribution is blended with the previous frame's (blended) one with
  weight ``BLEND * exp(-(L_t - L_t-1)^2 / BLEND_SIGMA)``, L in [0, 1].

Both reset at a scene cut (:func:`is_scene_cut`, threshold ``MRFSettings.scene_cut``).
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
)
from vidcolor.errors import VidcolorError
from vidcolor.mrf import MRFSettings, histogram_transfer, readout, refine

ALL_DECODINGS = (*DECODINGS, "mrf")
BLEND = 0.5
BLEND_SIGMA = 1e-3
REFERENCE_FLOOR = 1e-3  # added to a reference histogram's shares so that no colour is ruled out


@dataclass(frozen=True)
class DecodeSettings:
    """How a distribution over bins becomes a colour.

    ``method``: one of ``ALL_DECODINGS``; ``temperature``: for ``annealed``; ``mrf``: the Potts
    model's constants for ``mrf`` (its ``scene_cut`` serves every decoding); ``temporal``: link
    each frame of a film to the previous one; ``reference``: a reference colour image's ab
    histogram ``(23, 23)`` (counts over the grid) that reweights every distribution (global
    histogram transfer).
    """

    method: str = "annealed"
    temperature: float = ANNEAL_TEMPERATURE
    mrf: MRFSettings = MRFSettings()
    temporal: bool = True
    reference: np.ndarray | None = None


@dataclass
class FilmState:
    """What carries over from one frame of a film to the next; one per film, frames in order.

    ``previous``: the previous frame's final distributions, ``(h, w, Q)`` tensor (blend) or
    ``(2, K, h, w)`` float64 array (MRF); ``previous_lightness``: its ``(h, w)`` L in [0, 1];
    ``cut_count``: scene cuts so far, a 0-d tensor on the decoding device (read :attr:`cuts`).
    """

    previous: torch.Tensor | np.ndarray | None = None
    previous_lightness: torch.Tensor | None = None
    cut_count: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.long))

    @property
    def cuts(self) -> int:
        """Scene cuts found so far (one host sync)."""
        return int(self.cut_count)


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
        if kind == "regression" and (settings.method == "mrf" or settings.reference is not None):
            raise VidcolorError(
                "this model predicts ab directly: --decode mrf and --reference need a classification model"
            )
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

    def decode(self, out: torch.Tensor, lightness: torch.Tensor, state: FilmState | None = None) -> torch.Tensor:
        """ab of a batch of frames.

        Args:
            out: ``(B, Q, h, w)`` logits (regression: ``(B, 2, h, w)`` ab, returned as is).
            lightness: ``(B, 1, H, W)`` L in [0, 100] of the same frames.
            state: the film's state, advanced over the batch; None decodes each frame on its own
                (photos, or ``temporal=False``).
        Returns:
            ``(B, 2, h, w)`` ab in Lab units on ``out``'s device.
        """
        if self.kind == "regression":
            return out
        if self.reference_log_weights is not None:
            out = out + self.reference_log_weights[None, :, None, None]
        if state is None and self.settings.method != "mrf":
            return decode(out, self.bins, self.settings.method, self.settings.temperature)
        small = functional.interpolate(lightness.to(out.device).float(), size=out.shape[-2:], mode="area") / 100
        if self.settings.method == "mrf":
            return self._refine(out, small, state)
        return self._blend(out, small, state)

    def _linked(self, lightness: torch.Tensor, state: FilmState | None) -> torch.Tensor | None:
        """The link weight to the previous frame's state: None without one, 0 at a scene cut."""
        if state is None or state.previous is None:
            return None
        cut = is_scene_cut(lightness, state.previous_lightness, self.settings.mrf.scene_cut)
        state.cut_count = state.cut_count.to(cut.device) + cut
        return ~cut

    def _refine(self, logits: torch.Tensor, small: torch.Tensor, state: FilmState | None) -> torch.Tensor:
        if logits.device.type == "cpu":  # frame by frame, so that each frame's maps stay in cache
            probs = [channel_marginals(frame, self.bins)[0].numpy() for frame in logits.split(1)]
        else:  # the whole batch on the device, then one transfer
            probs = list(channel_marginals(logits, self.bins).cpu().numpy())
        ab = []
        # the MRF runs on the host: the batch's lightness crosses once, and the state keeps host tensors
        for frame_probs, lightness in zip(probs, small[:, 0].cpu(), strict=True):
            if self.channel_reference is not None:
                frame_probs = np.stack(
                    [histogram_transfer(p, h) for p, h in zip(frame_probs, self.channel_reference, strict=True)]
                )
            linked = self._linked(lightness, state)
            use_previous = linked is not None and bool(linked)
            previous_light = state.previous_lightness.numpy() if use_previous else None
            previous = state.previous if use_previous else None
            q = refine(frame_probs, lightness.numpy(), self.settings.mrf, previous, previous_light)
            if state is not None:
                state.previous, state.previous_lightness = q, lightness
            ab.append(readout(q, self.settings.mrf.readout))
        return torch.from_numpy(np.stack(ab)).to(logits.device)

    def _blend(self, logits: torch.Tensor, small: torch.Tensor, state: FilmState) -> torch.Tensor:
        """Each frame's distributions blended with the previous frame's; stays on the device.

        Frame by frame (each frame's Q-bin maps stay in cache) with the bins last (contiguous
        softmax, a broadcast lerp: about 2x faster than over the outer dimension, measured).
        """
        ab = []
        for i in range(len(logits)):
            current, lightness = torch.softmax(bins_last(logits[i : i + 1])[0], dim=-1), small[i, 0]
            linked = self._linked(lightness, state)
            if linked is not None:
                change = lightness - state.previous_lightness
                weight = BLEND * torch.exp(-(change**2) / BLEND_SIGMA) * linked
                current = torch.lerp(current, state.previous, weight[..., None])
            state.previous, state.previous_lightness = current, lightness
            ab.append(decode_probs(current, self.bins, self.settings.method, self.settings.temperature))
        return torch.stack(ab).permute(0, 3, 1, 2).contiguous()
