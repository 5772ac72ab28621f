"""Potts-model refinement of per-pixel colour distributions (Melas-Kyriazi & Han), in numba.

Each colour channel (a, then b) is a grid of categorical variables over the K = 23 per-channel
bins (``bins.GRID_VALUES``). The model rewards (higher is better)

* unary: theta_i(k) = c * p_i(k) (``unary="prob"``) or c * sqrt(p_i(k)) (``unary="sqrt"``);
* pairwise, between 4-neighbours i, j: w_ij * s(y_i, y_j) with s = ``same`` (10) for equal
  bins, ``near`` (3) for bins at most ``band`` (2) apart, 0 otherwise, and
  w_ij = exp(-(L_i - L_j)^2 / sigma), L the lightness scaled to [0, 1] (so sigma = 1e-4 means
  that a step of 1 L unit, 0.01, weakens the link by e);
* temporal (films): pixel i of frame t is linked to the same pixel's final distribution at
  frame t-1 by temporal_weight * exp(-(L_i(t) - L_i(t-1))^2 / temporal_sigma) * s (its own
  sigma, 1e-2: film grain and motion change L between frames more than across a pixel; the
  defaults cut flicker by a third on the colour clips, see benchmarks/RESULTS.md).

Inference is mean-field: q starts uniform; each sweep updates the two colours of a
checkerboard in turn (each pixel's q_i(k) proportional to exp(theta_i(k) + sum_j w_ij sum_l
s(k, l) q_j(l))), which is coordinate ascent on the 4-neighbour graph and parallel over rows.
The banded s makes a sweep O(H W K). The result is nearly one-hot and is decoded by its mode.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from vidcolor.bins import GRID_VALUES

MRF_UNARY_WEIGHT = 10.0
MRF_SAME = 10.0
MRF_NEAR = 3.0
MRF_BAND = 2
MRF_SIGMA = 1e-4
MRF_ITERATIONS = 8
TEMPORAL_WEIGHT = 2.0
TEMPORAL_SIGMA = 1e-2  # lightness changes more between frames (grain, motion) than across a pixel
_CHANNEL_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidcolor-mrf")
SCENE_CUT = 0.12  # mean |L_t - L_t-1| (L in [0, 1]) above which a new scene starts


@dataclass(frozen=True)
class MRFSettings:
    """Every constant of the Potts model (see the module docstring for their meaning)."""

    iterations: int = MRF_ITERATIONS
    sigma: float = MRF_SIGMA
    unary: str = "prob"  # or "sqrt"
    unary_weight: float = MRF_UNARY_WEIGHT
    same: float = MRF_SAME
    near: float = MRF_NEAR
    band: int = MRF_BAND
    temporal_weight: float = TEMPORAL_WEIGHT
    temporal_sigma: float = TEMPORAL_SIGMA
    scene_cut: float = SCENE_CUT


def _mean_field_kernel(bias, right, down, iterations, same, near, band):  # pragma: no cover - compiled
    """Mean-field sweeps (float64). bias = unary + temporal field (H, W, K); right/down (H, W) link weights."""
    height, width, k = bias.shape
    q = np.full((height, width, k), 1.0 / k, dtype=np.float64)
    for _ in range(iterations):
        for parity in range(2):
            for y in numba.prange(height):
                message = np.empty(k, dtype=np.float64)
                field = np.empty(k, dtype=np.float64)
                for x in range((y + parity) % 2, width, 2):
                    for c in range(k):
                        message[c] = 0.0
                    if x + 1 < width:
                        w = right[y, x]
                        for c in range(k):
                            message[c] += w * q[y, x + 1, c]
                    if x > 0:
                        w = right[y, x - 1]
                        for c in range(k):
                            message[c] += w * q[y, x - 1, c]
                    if y + 1 < height:
                        w = down[y, x]
                        for c in range(k):
                            message[c] += w * q[y + 1, x, c]
                    if y > 0:
                        w = down[y - 1, x]
                        for c in range(k):
                            message[c] += w * q[y - 1, x, c]
                    top = -1e30
                    for c in range(k):
                        total = bias[y, x, c] + same * message[c]
                        for d in range(1, band + 1):
                            if c - d >= 0:
                                total += near * message[c - d]
                            if c + d < k:
                                total += near * message[c + d]
                        field[c] = total
                        if total > top:
                            top = total
                    norm = 0.0
                    for c in range(k):
                        gap = field[c] - top
                        # exp(-36) < 3e-16: such bins hold no mass at float64 precision
                        field[c] = np.exp(gap) if gap > -36.0 else 0.0
                        norm += field[c]
                    for c in range(k):
                        q[y, x, c] = field[c] / norm
    return q


# The same kernel compiled twice: parallel over rows for large grids, serial for small ones
# (where thread start-up costs more than it saves); both release the GIL so that the a and b
# channels can run on two threads at once.
_mean_field = numba.njit(parallel=True, nogil=True, cache=True, fastmath=True, error_model="numpy")(_mean_field_kernel)
_mean_field_serial = numba.njit(parallel=False, nogil=True, cache=True, fastmath=True, error_model="numpy")(
    _mean_field_kernel
)
SERIAL_BELOW = 128 * 128  # pixels


@numba.njit(parallel=True, nogil=True, cache=True)
def _banded_smooth(q, weight, same, near, band):  # pragma: no cover - compiled
    """out[y, x, k] = weight[y, x] * sum_l s(k, l) q[y, x, l] for the banded Potts s."""
    height, width, k = q.shape
    out = np.empty_like(q)
    for y in numba.prange(height):
        for x in range(width):
            w = weight[y, x]
            for c in range(k):
                total = same * q[y, x, c]
                for d in range(1, band + 1):
                    if c - d >= 0:
                        total += near * q[y, x, c - d]
                    if c + d < k:
                        total += near * q[y, x, c + d]
                out[y, x, c] = w * total
    return out


def link_weights(lightness: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights of the right and down links of each pixel.

    Args:
        lightness: ``(H, W)`` L scaled to [0, 1].
        sigma: w = exp(-(L_i - L_j)^2 / sigma).
    Returns:
        ``(right, down)``, each ``(H, W)`` float32; the last column / row is 0 (no neighbour).
    """
    lightness = lightness.astype(np.float32)
    right = np.zeros_like(lightness)
    down = np.zeros_like(lightness)
    right[:, :-1] = np.exp(-((lightness[:, 1:] - lightness[:, :-1]) ** 2) / sigma)
    down[:-1, :] = np.exp(-((lightness[1:, :] - lightness[:-1, :]) ** 2) / sigma)
    return right, down


def unary_term(probs: np.ndarray, settings: MRFSettings) -> np.ndarray:
    """theta = c p or c sqrt(p) for ``(H, W, K)`` probabilities."""
    if settings.unary == "sqrt":
        return (settings.unary_weight * np.sqrt(np.clip(probs, 0, None))).astype(np.float32)
    if settings.unary != "prob":
        raise ValueError(f"unknown unary {settings.unary!r}; use 'prob' or 'sqrt'")
    return (settings.unary_weight * probs).astype(np.float32)


def refine_channel(
    probs: np.ndarray,
    lightness: np.ndarray,
    settings: MRFSettings = MRFSettings(),
    previous: np.ndarray | None = None,
    previous_lightness: np.ndarray | None = None,
) -> np.ndarray:
    """Mean-field inference for one channel of one frame.

    Args:
        probs: ``(H, W, K)`` per-pixel probabilities over the channel's bins.
        lightness: ``(H, W)`` L in [0, 1] at the same resolution.
        settings: the model's constants.
        previous: ``(H, W, K)`` the previous frame's refined q (temporal term), or None.
        previous_lightness: ``(H, W)`` the previous frame's L in [0, 1] (needed with ``previous``).
    Returns:
        ``(H, W, K)`` float32 refined distributions q.
    """
    unary = unary_term(np.ascontiguousarray(probs, dtype=np.float32), settings)
    right, down = link_weights(lightness, settings.sigma)
    if previous is not None and settings.temporal_weight > 0:
        change = (lightness.astype(np.float32) - previous_lightness.astype(np.float32)) ** 2
        weight = (settings.temporal_weight * np.exp(-change / settings.temporal_sigma)).astype(np.float32)
        temporal = _banded_smooth(
            np.ascontiguousarray(previous, dtype=np.float32), weight, settings.same, settings.near, settings.band
        )
    else:
        temporal = np.zeros_like(unary)
    bias = unary.astype(np.float64) + temporal
    kernel = _mean_field_serial if lightness.size < SERIAL_BELOW else _mean_field
    q = kernel(
        bias,
        right.astype(np.float64),
        down.astype(np.float64),
        settings.iterations,
        float(settings.same),
        float(settings.near),
        settings.band,
    )
    return q.astype(np.float32)


def histogram_transfer(probs: np.ndarray, histogram: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """Multiply each pixel's distribution by a global histogram and renormalise.

    Args:
        probs: ``(H, W, K)`` probabilities.
        histogram: ``(K,)`` non-negative weights (e.g. a reference image's channel histogram).
        floor: added to the normalised histogram so that no bin is ruled out entirely.
    Returns:
        ``(H, W, K)`` renormalised probabilities.
    """
    weights = histogram.astype(np.float64)
    weights = weights / max(weights.sum(), 1e-12) + floor
    out = probs * weights.astype(np.float32)
    return (out / np.clip(out.sum(axis=-1, keepdims=True), 1e-12, None)).astype(np.float32)


def mode_values(q: np.ndarray) -> np.ndarray:
    """``(H, W, K)`` distributions over ``GRID_VALUES`` -> ``(H, W)`` value of the most likely bin."""
    return GRID_VALUES[q.argmax(axis=-1)]


def is_scene_cut(lightness: np.ndarray, previous_lightness: np.ndarray, threshold: float = SCENE_CUT) -> bool:
    """A new scene starts when the mean absolute lightness change (L in [0, 1]) exceeds ``threshold``."""
    return float(np.abs(lightness.astype(np.float32) - previous_lightness.astype(np.float32)).mean()) > threshold


class PottsRefiner:
    """Refines a stream of frames' per-channel distributions, carrying the temporal state.

    Call :meth:`reset` at the start of each film (or photo). ``temporal=False`` refines every
    frame on its own.
    """

    def __init__(
        self,
        settings: MRFSettings = MRFSettings(),
        temporal: bool = True,
        reference: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.settings = settings
        self.temporal = temporal
        self.reference = reference
        self.cuts = 0
        self.reset()

    def reset(self) -> None:
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self._previous_lightness: np.ndarray | None = None

    def refine(self, probs_a: np.ndarray, probs_b: np.ndarray, lightness: np.ndarray) -> np.ndarray:
        """One frame: ``(H, W, 23)`` a and b distributions and ``(H, W)`` L in [0, 1] -> ``(2, H, W)`` ab."""
        if self.reference is not None:
            probs_a = histogram_transfer(probs_a, self.reference[0])
            probs_b = histogram_transfer(probs_b, self.reference[1])
        linked = self.temporal and self._previous is not None
        if linked and is_scene_cut(lightness, self._previous_lightness, self.settings.scene_cut):
            linked = False
            self.cuts += 1
        previous = self._previous if linked else (None, None)
        job_b = _CHANNEL_POOL.submit(
            refine_channel, probs_b, lightness, self.settings, previous[1], self._previous_lightness
        )
        q_a = refine_channel(probs_a, lightness, self.settings, previous[0], self._previous_lightness)
        q_b = job_b.result()
        if self.temporal:
            self._previous = (q_a, q_b)
            self._previous_lightness = lightness
        return np.stack((mode_values(q_a), mode_values(q_b)))
