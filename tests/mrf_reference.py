"""A plain NumPy implementation of vidcolor.mrf's mean-field, to check the numba kernels."""

from __future__ import annotations

import numpy as np


def banded_message(m: np.ndarray, same: float, near: float, band: int) -> np.ndarray:
    """sum_l s(k, l) m(l) along the last axis, with s = same on the diagonal and near within band."""
    out = same * m
    for d in range(1, band + 1):
        out[..., d:] += near * m[..., :-d]
        out[..., :-d] += near * m[..., d:]
    return out


def mean_field_reference(bias, right, down, iterations, same, near, band):
    """Checkerboard mean-field exactly as the numba kernel does it, vectorised with NumPy (float64).

    bias: ``(H, W, K)`` unary plus temporal field; right/down: ``(H, W)`` link weights.
    """
    height, width, k = bias.shape
    q = np.full((height, width, k), 1.0 / k)
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(iterations):
        for parity in range(2):
            message = np.zeros((height, width, k))
            message[:, :-1] += right[:, :-1, None] * q[:, 1:]
            message[:, 1:] += right[:, :-1, None] * q[:, :-1]
            message[:-1] += down[:-1, :, None] * q[1:]
            message[1:] += down[:-1, :, None] * q[:-1]
            field = bias + banded_message(message, same, near, band)
            field = np.exp(field - field.max(axis=-1, keepdims=True))
            updated = field / field.sum(axis=-1, keepdims=True)
            mask = (yy + xx) % 2 == parity
            q[mask] = updated[mask]
    return q
