"""Motion between consecutive film frames: dense optical flow, warping along it, and its confidence.

The film's temporal link (:mod:`vidcolor.decoding`) carries the previous frame's colour
distributions to where their content is in the current frame instead of leaving them at the
same pixel. The flow is OpenCV's DIS optical flow (Kroeger et al. 2016) on the luma at the
network's input resolution (4x the distributions' side); it is then averaged down to the
distributions' grid. Where the warp is wrong (occlusions, newly visible pixels, the frame's
edges, lighting changes) the warped previous luma does not match the current luma: the
confidence ``exp(-d^2 / CONFIDENCE_SIGMA)`` of the mean squared luma difference ``d^2`` over
each distribution cell, 0 for cells whose source lies outside the previous frame, lets those
cells keep the network's own colours.

All functions are pure. Each flow is computed by a fresh OpenCV DIS object: one that has
computed a flow of another size gives a different flow afterwards (measured: up to 2.4 px), so a
shared one would make a film's colours depend on what its thread computed before; making one
costs about 7 microseconds.
"""

from __future__ import annotations

import functools

import cv2
import numba
import numpy as np
import torch
from torch.nn import functional

FLOW_SCALE = 4  # the flow is computed at this many times the distributions' side (the network's input)
CONFIDENCE_SIGMA = 4e-3  # on the squared L difference, L in [0, 1]: a 0.063 mismatch weakens the link by e


def flow_luma(lightness: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """The uint8 planes the flow is computed on, for a batch at once (one transfer to the host).

    Args:
        lightness: ``(B, H, W)`` L in [0, 1] (any device), at least ``size`` or not.
        size: the flow's ``(height, width)``.
    Returns:
        ``(B, height, width)`` uint8 C-contiguous host array (L scaled to 0..255, area-averaged).
    """
    planes = lightness.float()
    if tuple(planes.shape[-2:]) != tuple(size):
        planes = functional.interpolate(planes[:, None], size=size, mode="area")[:, 0]
    host = np.ascontiguousarray(planes.cpu().numpy())
    return cv2.convertScaleAbs(host.reshape(-1, host.shape[-1]), alpha=255.0).reshape(host.shape)  # rounds, saturates


def dense_flow(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Backward flow: ``current[y, x]`` shows what ``previous`` shows at ``(y, x) + flow[y, x]``.

    Args:
        previous, current: ``(H, W)`` uint8 planes of two consecutive frames.
    Returns:
        ``(H, W, 2)`` float32 displacement (x, y) in pixels of that grid.
    """
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST).calc(current, previous, None)


@functools.lru_cache(maxsize=8)
def _pixel_grid(height: int, width: int) -> np.ndarray:
    """``(height, width, 2)`` float32 (x, y) of every pixel (read-only; shared between calls)."""
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    grid = np.stack([columns, rows], axis=-1)
    grid.flags.writeable = False
    return grid


def sample_positions(flow: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each cell of a ``size`` grid comes from in the previous frame.

    Args:
        flow: ``(H, W, 2)`` backward flow in pixels of its own grid (a multiple of ``size`` or not).
        size: the ``(h, w)`` grid to sample on (the distributions').
    Returns:
        ``x``, ``y``: ``(h, w)`` float32 source positions in cells of that grid (cell centres at
        integers); ``inside``: ``(h, w)`` bool, the source lies within the previous frame.
    """
    height, width = size
    scale_x, scale_y = width / flow.shape[1], height / flow.shape[0]
    small = cv2.resize(flow, (width, height), interpolation=cv2.INTER_AREA)
    grid = _pixel_grid(height, width)
    x = grid[..., 0] + small[..., 0] * scale_x
    y = grid[..., 1] + small[..., 1] * scale_y
    inside = (x > -0.5) & (x < width - 0.5) & (y > -0.5) & (y < height - 0.5)
    return x, y, inside


def warp_confidence(previous: np.ndarray, current: np.ndarray, flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Confidence in [0, 1] of the warp on a ``size`` grid, from how well the luma matches.

    Args:
        previous, current: ``(H, W)`` uint8 planes the flow was computed on.
        flow: ``(H, W, 2)`` their backward flow (:func:`dense_flow`).
        size: the ``(h, w)`` grid of the distributions.
    Returns:
        ``(h, w)`` float32: ``exp(-d^2 / CONFIDENCE_SIGMA)``, ``d^2`` the mean squared difference
        (L in [0, 1]) between the current luma and the warped previous luma over each cell.
    """
    positions = cv2.add(_pixel_grid(*current.shape), flow)
    warped = cv2.remap(previous, positions, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    difference = cv2.absdiff(warped, current).astype(np.float32)
    squared = cv2.resize(cv2.multiply(difference, difference), (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return np.exp(squared * np.float32(-1.0 / (255.0 * 255.0 * CONFIDENCE_SIGMA)))


@numba.njit(nogil=True, cache=True, fastmath=True)
def _warp_last(maps, x, y, out):  # pragma: no cover - compiled
    """Bilinear warp of ``(h, w, C)`` maps to source positions ``x``, ``y`` (clamped to the grid)."""
    height, width, channels = maps.shape
    for i in range(height):
        for j in range(width):
            xs = min(max(x[i, j], 0.0), width - 1.0)
            ys = min(max(y[i, j], 0.0), height - 1.0)
            x0 = min(int(xs), max(width - 2, 0))
            y0 = min(int(ys), max(height - 2, 0))
            x1, y1 = min(x0 + 1, width - 1), min(y0 + 1, height - 1)
            fx, fy = xs - x0, ys - y0
            w00, w01 = (1.0 - fx) * (1.0 - fy), fx * (1.0 - fy)
            w10, w11 = (1.0 - fx) * fy, fx * fy
            a, b, c, d, o = maps[y0, x0], maps[y0, x1], maps[y1, x0], maps[y1, x1], out[i, j]
            for k in range(channels):
                o[k] = w00 * a[k] + w01 * b[k] + w10 * c[k] + w11 * d[k]


def warp_maps(maps: torch.Tensor, x: np.ndarray, y: np.ndarray) -> torch.Tensor:
    """Bilinear warp of maps with the channels last to the source positions of :func:`sample_positions`.

    Args:
        maps: ``(h, w, C)`` float tensor (any device; a distribution per cell stays one: the
            warp is a convex combination of 4 cells).
        x, y: ``(h, w)`` float32 source positions in cells (outside the grid: the nearest edge).
    Returns:
        ``(h, w, C)`` in ``maps``' dtype and device (on the CPU a numba kernel, 0.4 ms for
        48 x 88 x 261; elsewhere ``grid_sample``).
    """
    if maps.device.type == "cpu":
        source = np.ascontiguousarray(maps.numpy())
        out = np.empty_like(source)
        _warp_last(source, x, y, out)
        return torch.from_numpy(out)
    height, width = maps.shape[:2]
    grid = np.stack([(2.0 * x + 1.0) / width - 1.0, (2.0 * y + 1.0) / height - 1.0], axis=-1)
    grid = torch.from_numpy(grid[None]).to(maps.device, maps.dtype)
    warped = functional.grid_sample(
        maps.permute(2, 0, 1)[None], grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return warped[0].permute(1, 2, 0)


def motion_prior(
    previous_luma: np.ndarray, current_luma: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The motion from the previous frame to the current one on the distributions' grid.

    Args:
        previous_luma, current_luma: ``(H, W)`` uint8 planes (:func:`flow_luma`).
        size: the ``(h, w)`` grid of the distributions.
    Returns:
        ``x``, ``y``: ``(h, w)`` float32 source positions for :func:`warp_maps`, and
        ``confidence``: ``(h, w)`` float32 in [0, 1] (0 where the source lies outside the
        previous frame).
    """
    flow = dense_flow(previous_luma, current_luma)
    x, y, inside = sample_positions(flow, size)
    confidence = warp_confidence(previous_luma, current_luma, flow, size) * inside
    return x, y, confidence
