"""Potts-model refinement of per-pixel colour distributions (Melas-Kyriazi & Han), in numba.

Each colour channel (a and b) is a grid of categorical variables over the K = 23 per-channel
bins (``bins.GRID_VALUES``). The model rewards (higher is better)

* unary: theta_i(k) = c * p_i(k) (``unary="prob"``), c * sqrt(p_i(k)) (``unary="sqrt"``) or
  c * log p_i(k) (``unary="log"``: with c = 1 and no pairwise term q is the network's own p,
  so the pairwise term acts as a smoothing prior on it);
* pairwise, between 4-neighbours i, j: w_ij * s(y_i, y_j) with s = ``same`` (10) for equal
  bins, ``near`` (3) for bins at most ``band`` (2) apart, 0 otherwise, and
  w_ij = exp(-(L_i - L_j)^2 / sigma), L the lightness scaled to [0, 1] (so sigma = 1e-4 means
  that a step of 1 L unit, 0.01, weakens the link by e);
* temporal (films): the unary's distribution p is, frame after frame, the network's fused with
  the previous frame's (fused) one carried along the optical flow: p_i^(1 - w_i) p_carried_i^w_i,
  w_i = temporal_weight times the warp's confidence (:mod:`vidcolor.decoding`,
  :mod:`vidcolor.motion`). The link acts on the distributions before the MRF, not on its
  posterior: fed back, the posterior is smoothed again each frame and a still shot's colours
  creep (measured: 0.9 Lab units on average after 200 frames, 8 at the 99th percentile).

Inference is mean-field: q starts uniform; each sweep updates the two colours of a
checkerboard in turn (each pixel's q_i(k) proportional to exp(theta_i(k) + sum_j w_ij sum_l
s(k, l) q_j(l))), which is coordinate ascent on the 4-neighbour graph. The banded s makes a
sweep O(H W K). The result is read out by its mode (``readout="mode"``; with strong terms q is
nearly one-hot) or by its mean value (``readout="mean"``, smoother where q is spread).

How the kernel is fast (``_mean_field``): the grid is split into its two checkerboard colours,
each stored row by row with the bins of a row together, ``(H, K, ceil(W / 2))``, so that every
inner loop runs over a contiguous row of same-coloured pixels and compiles to SIMD code, and a
row's data for all bins is one contiguous block; a pixel's 4 neighbours are then the same row
of the other colour (shifted by 0 or 1 with the row's parity) and the rows above and below. The
sum over the band is a running window sum (2 operations per bin for any band). Each pixel
keeps exp(field - max) unnormalised plus 1 / its sum, and the neighbours' 1 / sum is folded
into the 4 link weights, which saves a pass over the bins. ``exp`` is a polynomial
(``_exp_nonpositive``, relative error below 2e-9) because numba cannot vectorise calls to the
libm one. The two channels and blocks of rows run on numba's threads, and the large work
buffers are kept between calls of the same shape (a film's frames).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numba
import numpy as np

import vidcolor.numba_threads  # noqa: F401 - before any parallel kernel runs
from vidcolor.bins import GRID_VALUES

# The defaults: a log unary (the Potts term a smoothing prior on the network's own distribution),
# linked to the previous frame on the log scale, read out by the mean; chosen for the lite0-unet
# default model with benchmarks/tune_decoding.py --mrf (benchmarks/RESULTS.md).
MRF_UNARY = "log"
MRF_UNARY_WEIGHT = 1.0
MRF_SAME = 1.0
MRF_NEAR = 0.3
MRF_BAND = 2
MRF_SIGMA = 1e-4
MRF_ITERATIONS = 8
TEMPORAL_WEIGHT = 0.98  # 0.95 -> 0.98: the clips' CDC 1.17x -> 1.11x (worst 1.54x -> 1.40x), session 17
MRF_READOUT = "mean"
LOG_FLOOR = 1e-6  # the smallest probability the log unary sees
UNARIES = ("prob", "sqrt", "log")
READOUTS = ("mode", "mean")
SCENE_CUT = 0.12  # mean |L_t - L_t-1| (L in [0, 1]) above which a new scene starts
_COMPILE = {"nogil": True, "cache": True, "fastmath": True, "error_model": "numpy"}


@dataclass(frozen=True)
class MRFSettings:
    """Every constant of the Potts model (see the module docstring for their meaning)."""

    iterations: int = MRF_ITERATIONS
    sigma: float = MRF_SIGMA
    unary: str = MRF_UNARY  # "prob", "sqrt" or "log"
    unary_weight: float = MRF_UNARY_WEIGHT
    same: float = MRF_SAME
    near: float = MRF_NEAR
    band: int = MRF_BAND
    temporal_weight: float = TEMPORAL_WEIGHT
    scene_cut: float = SCENE_CUT
    readout: str = MRF_READOUT  # the colour of the posterior: its "mode" bin, or its "mean" value


# The constants shipped before the lite0-unet model (prob unary c = 10, same 10, near 3, temporal
# 2, mode read-out): sharper, blotchier colours with less flicker.
POTTS_CLASSIC = MRFSettings(unary="prob", unary_weight=10.0, same=10.0, near=3.0, temporal_weight=2.0, readout="mode")


@numba.njit(inline="always", **_COMPILE)
def _exp_nonpositive(x):  # pragma: no cover - compiled
    """exp(x) for x <= 0, relative error < 2e-9; x below -36 counts as -36 (exp(-36) = 2e-16).

    exp(x) = exp(x / 256) ** 256: a degree-7 Taylor polynomial on [-0.14, 0], squared 8 times.
    Only multiplications and additions, so that loops calling it vectorise.
    """
    y = max(x, -36.0) * 0.00390625
    p = 1.0 + y * (1.0 + y * (0.5 + y * (1 / 6 + y * (1 / 24 + y * (1 / 120 + y * (1 / 720 + y * (1 / 5040)))))))
    for _ in range(8):
        p = p * p
    return p


@numba.njit(parallel=True, **_COMPILE)
def _checkerboard(bias, right, down, field, e, scale, links):  # pragma: no cover - compiled
    """Lay ``bias`` ``(C, K, H, W)`` out as the two checkerboard colours in ``field``, the link
    weights ``right``/``down`` ``(H, W)`` in ``links``, and start ``e``, ``scale`` at the uniform
    distribution (shapes as :func:`_mean_field` documents)."""
    channels, k, height, width = bias.shape
    half = (width + 1) // 2
    # Colour c holds the pixels with (x + y) % 2 == c; row y of it starts at x = (y + c) % 2 and
    # has (width - shift + 1) // 2 pixels (one fewer than half on odd widths: that slot is padding).
    # links: to the left, right, upper, lower neighbour, 0 where there is none.
    # e: exp(field - max) per bin, unnormalised; scale: 1 / sum_k e; both 0 on a 1-pixel border.
    e[:, :, 0] = 0.0
    e[:, :, height + 1] = 0.0
    scale[:, :, 0] = 0.0
    scale[:, :, height + 1] = 0.0
    for y in numba.prange(height):
        for colour in range(2):
            shift = (y + colour) & 1
            count = (width - shift + 1) // 2
            for j in range(half):
                x = 2 * j + shift
                inside = j < count
                links[colour, 0, y, j] = right[y, x - 1] if inside and x > 0 else 0.0
                links[colour, 1, y, j] = right[y, x] if inside and x + 1 < width else 0.0
                links[colour, 2, y, j] = down[y - 1, x] if inside and y > 0 else 0.0
                links[colour, 3, y, j] = down[y, x] if inside and y + 1 < height else 0.0
            for ch in range(channels):
                scale[ch, colour, y + 1, 0] = 0.0
                scale[ch, colour, y + 1, half + 1] = 0.0
                for j in range(half):
                    scale[ch, colour, y + 1, j + 1] = 1.0 / k
                for c in range(k):
                    e[ch, colour, y + 1, c, 0] = 0.0
                    e[ch, colour, y + 1, c, half + 1] = 0.0
                    for j in range(half):
                        e[ch, colour, y + 1, c, j + 1] = 1.0
                    for j in range(count):
                        field[ch, colour, y, c, j] = bias[ch, c, y, 2 * j + shift]
                    for j in range(count, half):
                        field[ch, colour, y, c, j] = 0.0


@numba.njit(parallel=True, **_COMPILE)
def _read_out(e, scale, q):  # pragma: no cover - compiled
    """Each pixel's distribution from the checkerboard layout (``e`` times ``scale``) into ``q`` ``(C, K, H, W)``."""
    channels, k, height, width = q.shape
    for y in numba.prange(height):
        for ch in range(channels):
            for colour in range(2):
                shift = (y + colour) & 1
                for c in range(k):
                    for j in range((width - shift + 1) // 2):
                        q[ch, c, y, 2 * j + shift] = e[ch, colour, y + 1, c, j + 1] * scale[ch, colour, y + 1, j + 1]


@numba.njit(parallel=True, **_COMPILE)
def _mean_field(bias, right, down, iterations, same, near, band, blocks, field, e, scale, links, q):  # pragma: no cover
    """Mean-field inference of the Potts model, independently for each channel; fills ``q``
    ``(C, K, H, W)`` with each pixel's distribution (summing to 1).

    Args: ``bias`` ``(C, K, H, W)`` float64 unary plus temporal field, per channel; ``right``,
    ``down`` ``(H, W)`` float64 weights of each pixel's link to its right / lower neighbour (the
    last column's / row's ignored); ``iterations``: sweeps; ``same``, ``near``, ``band``: the
    banded Potts compatibility; ``blocks``: bands of rows per channel run in parallel (threads /
    channels, at least 1); ``field``, ``e``, ``scale``, ``links``: work buffers (overwritten) of
    shapes ``(C, 2, H, K, ceil(W/2))``, ``(C, 2, H + 2, K, ceil(W/2) + 2)``,
    ``(C, 2, H + 2, ceil(W/2) + 2)`` and ``(2, 4, H, ceil(W/2))``.
    """
    channels, k, height, width = bias.shape
    half = (width + 1) // 2
    _checkerboard(bias, right, down, field, e, scale, links)
    # Scratch per task, reused row after row: messages (band + 1 zero rows, K rows, band zero
    # rows), the 4 scaled link weights, the running band sum and the running max. Each is its
    # own array so that LLVM can vectorise the loops that write one and read another.
    tasks, first = channels * blocks, band + 1
    messages = np.zeros((tasks, first + k + band, half))
    to_left = np.empty((tasks, half))
    to_right = np.empty((tasks, half))
    to_upper = np.empty((tasks, half))
    to_lower = np.empty((tasks, half))
    window = np.empty((tasks, half))
    top = np.empty((tasks, half))
    centre = same - near
    for _ in range(iterations):
        for colour in range(2):
            other = 1 - colour
            for task in numba.prange(tasks):
                ch = task // blocks
                block = task % blocks
                for y in range(block * height // blocks, (block + 1) * height // blocks):
                    shift = (y + colour) & 1
                    for j in range(half):
                        to_left[task, j] = links[colour, 0, y, j] * scale[ch, other, y + 1, j + shift]
                        to_right[task, j] = links[colour, 1, y, j] * scale[ch, other, y + 1, j + shift + 1]
                        to_upper[task, j] = links[colour, 2, y, j] * scale[ch, other, y, j + 1]
                        to_lower[task, j] = links[colour, 3, y, j] * scale[ch, other, y + 2, j + 1]
                        window[task, j] = 0.0
                        top[task, j] = -1e300
                    for c in range(-band, k):
                        ahead = c + band  # the bin whose message enters the window now
                        if ahead < k:
                            for j in range(half):
                                messages[task, first + ahead, j] = (
                                    to_left[task, j] * e[ch, other, y + 1, ahead, j + shift]
                                    + to_right[task, j] * e[ch, other, y + 1, ahead, j + shift + 1]
                                    + to_upper[task, j] * e[ch, other, y, ahead, j + 1]
                                    + to_lower[task, j] * e[ch, other, y + 2, ahead, j + 1]
                                )
                        if c < 0:
                            for j in range(half):
                                window[task, j] += messages[task, first + ahead, j]
                            continue
                        for j in range(half):
                            summed = (
                                window[task, j]
                                + messages[task, first + ahead, j]
                                - messages[task, first + c - band - 1, j]
                            )
                            window[task, j] = summed
                            total = field[ch, colour, y, c, j] + centre * messages[task, first + c, j] + near * summed
                            e[ch, colour, y + 1, c, j + 1] = total
                            # max written arithmetically: max() or a conditional becomes a
                            # masked store, which is slow on AMD; any value near the max will do
                            best = top[task, j]
                            top[task, j] = 0.5 * (best + total + abs(best - total))
                    for j in range(half):
                        scale[ch, colour, y + 1, j + 1] = 0.0
                    for c in range(k):
                        for j in range(half):
                            value = _exp_nonpositive(e[ch, colour, y + 1, c, j + 1] - top[task, j])
                            e[ch, colour, y + 1, c, j + 1] = value
                            scale[ch, colour, y + 1, j + 1] += value
                    for j in range(half):
                        scale[ch, colour, y + 1, j + 1] = 1.0 / scale[ch, colour, y + 1, j + 1]
    _read_out(e, scale, q)


_buffers = threading.local()


def _work_buffers(channels: int, k: int, height: int, width: int) -> tuple[np.ndarray, ...]:
    """The kernel's large work buffers for this shape, kept per thread between calls.

    A film's frames all have one shape, and allocating these afresh for every frame costs more
    than filling them (fresh pages fault on first touch: about a third of the time at 256x256).
    Returns ``(field, e, scale, links)`` in the shapes ``_mean_field`` documents.
    """
    shape = (channels, k, height, width)
    cached = getattr(_buffers, "cached", None)
    if cached is None or cached[0] != shape:
        half = (width + 1) // 2
        arrays = (
            np.empty((channels, 2, height, k, half)),
            np.empty((channels, 2, height + 2, k, half + 2)),
            np.empty((channels, 2, height + 2, half + 2)),
            np.empty((2, 4, height, half)),
        )
        cached = (shape, arrays)
        _buffers.cached = cached
    return cached[1]


def mean_field(
    bias: np.ndarray,
    right: np.ndarray,
    down: np.ndarray,
    iterations: int,
    same: float,
    near: float,
    band: int,
) -> np.ndarray:
    """Mean-field inference of the Potts model on numba's threads (see ``_mean_field``).

    Args:
        bias: ``(C, K, H, W)`` unary plus temporal field per channel (e.g. C = 2 for a and b).
        right, down: ``(H, W)`` link weights to the right / lower neighbour.
        iterations, same, near, band: sweeps and the banded Potts compatibility.
    Returns:
        ``(C, K, H, W)`` float64 distributions q.
    """
    bias = np.ascontiguousarray(bias, dtype=np.float64)
    q = np.empty(bias.shape)
    blocks = max(1, numba.get_num_threads() // bias.shape[0])
    _mean_field(
        bias,
        np.ascontiguousarray(right, dtype=np.float64),
        np.ascontiguousarray(down, dtype=np.float64),
        int(iterations),
        float(same),
        float(near),
        int(band),
        blocks,
        *_work_buffers(*bias.shape),
        q,
    )
    return q


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
    """theta = c p, c sqrt(p) or c log p (p floored at 1e-6), elementwise, for probabilities of any
    shape; float64."""
    probs = np.asarray(probs, dtype=np.float64)
    if settings.unary == "sqrt":
        return settings.unary_weight * np.sqrt(np.clip(probs, 0, None))
    if settings.unary == "log":
        return settings.unary_weight * np.log(np.clip(probs, LOG_FLOOR, None))
    if settings.unary != "prob":
        raise ValueError(f"unknown unary {settings.unary!r}; use 'prob', 'sqrt' or 'log'")
    return settings.unary_weight * probs


def refine(probs: np.ndarray, lightness: np.ndarray, settings: MRFSettings = MRFSettings()) -> np.ndarray:
    """Mean-field inference for the channels of one frame (each channel on its own).

    Args:
        probs: ``(C, K, H, W)`` per-pixel probabilities over each channel's K bins (C = 2 for
            a and b); in a film, already fused with the previous frame's along the motion
            (:mod:`vidcolor.decoding`).
        lightness: ``(H, W)`` L in [0, 1] at the same resolution.
        settings: the model's constants.
    Returns:
        ``(C, K, H, W)`` float64 refined distributions q.
    """
    bias = unary_term(probs, settings)
    right, down = link_weights(lightness, settings.sigma)
    return mean_field(bias, right, down, settings.iterations, settings.same, settings.near, settings.band)


def histogram_transfer(probs: np.ndarray, histogram: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """Multiply each pixel's distribution by a global histogram and renormalise.

    Args:
        probs: ``(K, H, W)`` probabilities.
        histogram: ``(K,)`` non-negative weights (e.g. a reference image's channel histogram).
        floor: added to the normalised histogram so that no bin is ruled out entirely.
    Returns:
        ``(K, H, W)`` renormalised probabilities (float32).
    """
    weights = histogram.astype(np.float64)
    weights = weights / max(weights.sum(), 1e-12) + floor
    out = probs * weights.astype(np.float32)[:, None, None]
    return (out / np.clip(out.sum(axis=0, keepdims=True), 1e-12, None)).astype(np.float32)


@numba.njit(parallel=True, **_COMPILE)
def _mode_bins(q):  # pragma: no cover - compiled
    """``(C, K, H, W)`` -> ``(C, H, W)`` int64 index of each pixel's most likely bin (the first on ties)."""
    channels, k, height, width = q.shape
    best = np.zeros((channels, height, width), dtype=np.int64)
    for y in numba.prange(height):
        for ch in range(channels):
            for c in range(1, k):
                for x in range(width):
                    if q[ch, c, y, x] > q[ch, best[ch, y, x], y, x]:
                        best[ch, y, x] = c
    return best


def mean_values(q: np.ndarray) -> np.ndarray:
    """``(C, K, H, W)`` distributions over ``GRID_VALUES`` -> ``(C, H, W)`` expected value (float32)."""
    total = q.sum(axis=1)
    return (np.tensordot(GRID_VALUES, q, axes=([0], [1])) / np.maximum(total, 1e-12)).astype(np.float32)


def readout(q: np.ndarray, how: str) -> np.ndarray:
    """The colour of each pixel's posterior: :func:`mode_values` or :func:`mean_values`."""
    return mean_values(q) if how == "mean" else mode_values(q)


def mode_values(q: np.ndarray) -> np.ndarray:
    """``(C, K, H, W)`` distributions over ``GRID_VALUES`` -> ``(C, H, W)`` value of the most likely bin."""
    return GRID_VALUES[_mode_bins(np.ascontiguousarray(q, dtype=np.float64))]
