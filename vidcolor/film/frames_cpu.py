"""Film chroma planes on the CPU in one pass: luma + low-resolution ab -> Cb, Cr (numba).

The same computation as the torch path of :func:`vidcolor.film.frames.chroma_planes` (lightness of
each luma code by table, area-averaged to chroma resolution; ab bilinearly upsampled,
``align_corners=False``; Lab -> XYZ -> linear RGB -> R'G'B' clipped -> Cb/Cr), fused per chroma
pixel so that no full-resolution float plane is ever made. At 1920x1080 the torch path spent
about half the film pipeline's time in those planes. The sRGB companding uses a table with
linear interpolation (error below 2e-5) instead of a power per channel. Each chroma row is made
in two passes over row buffers, in float32, with selects instead of branches, so that the
compiler vectorises them: 4.2 ms a 1080p frame on 2 threads against 8.2 for the scalar
float64 loop it replaced (``benchmarks/RESULTS.md``, session 10). Outputs agree with the torch
path to within one code value.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

import vidcolor.numba_threads  # noqa: F401 - before any parallel kernel runs
from vidcolor.color import (
    LAB_F_KNEE,
    LAB_F_OFFSET,
    LAB_KAPPA,
    RGB_FROM_XYZ,
    WHITE_D65,
    YCBCR_MATRICES,
    lightness_of_codes,
    linear_to_srgb,
)

# sRGB companding of linear light in [0, 1], tabulated at ENCODE_STEPS + 1 points.
ENCODE_STEPS = 4096
LINEAR_KNEE = 0.0031308  # below it the companding is linear (x 12.92)
_ENCODE_TABLE = linear_to_srgb(torch.linspace(0.0, 1.0, ENCODE_STEPS + 1, dtype=torch.float64)).float().numpy()
_RGB_FROM_XYZ = (RGB_FROM_XYZ * WHITE_D65[None, :]).float().numpy()  # white folded into the matrix


F32 = np.float32  # the kernel computes in float32 (two lanes per float64 one): every constant is float32
_ONE, _ZERO, _STEPS = F32(1.0), F32(0.0), F32(ENCODE_STEPS)
_LINEAR_KNEE, _LINEAR_SLOPE = F32(LINEAR_KNEE), F32(12.92)
_F_KNEE, _F_OFFSET, _INVERSE_KAPPA = F32(LAB_F_KNEE), F32(LAB_F_OFFSET), F32(1.0 / LAB_KAPPA)
_L_OFFSET, _INVERSE_116, _INVERSE_200, _INVERSE_500 = F32(16.0), F32(1.0 / 116.0), F32(1.0 / 200.0), F32(1.0 / 500.0)
_QUARTER, _HALF, _MID, _TOP = F32(0.25), F32(0.5), F32(128.0), F32(255.0)


@numba.njit(inline="always", fastmath=True)
def _encode(linear, table):  # pragma: no cover - compiled
    """sRGB companding of linear light, clipped to [0, 1] (selects, no branches: it vectorises)."""
    clipped = min(max(linear, _ZERO), _ONE)
    position = clipped * _STEPS
    index = min(np.int32(position), np.int32(ENCODE_STEPS - 1))
    fraction = position - F32(index)
    tabled = table[index] + fraction * (table[index + 1] - table[index])
    return clipped * _LINEAR_SLOPE if clipped <= _LINEAR_KNEE else tabled


@numba.njit(inline="always", fastmath=True)
def _f_inverse(f):  # pragma: no cover - compiled
    return f * f * f if f > _F_KNEE else (f - _F_OFFSET) * _INVERSE_KAPPA


@numba.njit(inline="always")
def _source(index, low, high):  # pragma: no cover - compiled
    """Bilinear source cells and weight of output ``index`` (``align_corners=False``)."""
    position = (index + 0.5) * low / high - 0.5
    if position < 0.0:
        position = 0.0
    first = min(int(position), low - 1)
    return first, min(first + 1, low - 1), position - first


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=True)
def _chroma(luma, lightness, ab, rgb_from_xyz, table, kr, kb, scale, u_out, v_out):  # pragma: no cover - compiled
    frames, height, width = luma.shape
    low_h, low_w = ab.shape[2], ab.shape[3]
    out_h, out_w = u_out.shape[1], u_out.shape[2]
    # the bilinear source columns, the same for every row
    first_column, second_column = np.empty(out_w, np.int32), np.empty(out_w, np.int32)
    column_weight = np.empty(out_w, np.float32)
    for j in range(out_w):
        c0, c1, wx = _source(j, low_w, out_w)
        first_column[j], second_column[j], column_weight[j] = c0, c1, wx
    halved = height == 2 * out_h and width == 2 * out_w  # even sides: 2x2 blocks, the common case
    m = rgb_from_xyz
    red_luma, blue_luma = F32(kr), F32(kb)
    green_luma = _ONE - red_luma - blue_luma
    cb_scale, cr_scale = F32(scale / (2.0 * (1.0 - kb))), F32(scale / (2.0 * (1.0 - kr)))
    for task in numba.prange(frames * out_h):
        frame = task // out_h
        i = task % out_h
        # each row in two passes over contiguous buffers, so that the compiler vectorises both
        light = np.empty(out_w, np.float32)
        if halved:
            upper, lower = luma[frame, 2 * i], luma[frame, 2 * i + 1]
            for j in range(out_w):
                light[j] = _QUARTER * (
                    lightness[upper[2 * j]] + lightness[upper[2 * j + 1]]
                    + lightness[lower[2 * j]] + lightness[lower[2 * j + 1]]
                )  # fmt: skip
        else:
            top, bottom = (i * height) // out_h, ((i + 1) * height + out_h - 1) // out_h
            for j in range(out_w):
                left, right = (j * width) // out_w, ((j + 1) * width + out_w - 1) // out_w
                total = F32(0.0)
                for y in range(top, bottom):
                    for x in range(left, right):
                        total += lightness[luma[frame, y, x]]
                light[j] = total / F32((bottom - top) * (right - left))
        r0, r1, wy64 = _source(i, low_h, out_h)
        wy = F32(wy64)
        a0, a1, b0, b1 = ab[frame, 0, r0], ab[frame, 0, r1], ab[frame, 1, r0], ab[frame, 1, r1]
        u_row, v_row = u_out[frame, i], v_out[frame, i]
        for j in range(out_w):
            c0, c1, wx = first_column[j], second_column[j], column_weight[j]
            a_top = a0[c0] + wx * (a0[c1] - a0[c0])
            a_bottom = a1[c0] + wx * (a1[c1] - a1[c0])
            b_top = b0[c0] + wx * (b0[c1] - b0[c0])
            b_bottom = b1[c0] + wx * (b1[c1] - b1[c0])
            a = a_top + wy * (a_bottom - a_top)
            b = b_top + wy * (b_bottom - b_top)
            fy = (light[j] + _L_OFFSET) * _INVERSE_116
            x_ = _f_inverse(fy + a * _INVERSE_500)
            y_ = _f_inverse(fy)
            z_ = _f_inverse(max(fy - b * _INVERSE_200, _ZERO))
            red = _encode(m[0, 0] * x_ + m[0, 1] * y_ + m[0, 2] * z_, table)
            green = _encode(m[1, 0] * x_ + m[1, 1] * y_ + m[1, 2] * z_, table)
            blue = _encode(m[2, 0] * x_ + m[2, 1] * y_ + m[2, 2] * z_, table)
            luma_value = red_luma * red + green_luma * green + blue_luma * blue
            cb = _MID + cb_scale * (blue - luma_value)
            cr = _MID + cr_scale * (red - luma_value)
            u_row[j] = np.uint8(min(max(np.floor(cb + _HALF), _ZERO), _TOP))
            v_row[j] = np.uint8(min(max(np.floor(cr + _HALF), _ZERO), _TOP))


def chroma_from_ab(
    luma: torch.Tensor, ab: torch.Tensor, full_range: bool, matrix: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cb and Cr planes of frames given by their luma and low-resolution ab.

    Args:
        luma: ``(B, H, W)`` uint8 Y' on the CPU.
        ab: ``(B, 2, h, w)`` float ab in Lab units (any resolution; upsampled bilinearly).
        full_range: Y' spans 0..255 (else 16..235) and so will Cb/Cr.
        matrix: ``bt601`` or ``bt709``.
    Returns:
        ``(U, V)`` uint8 tensors ``(B, ceil(H/2), ceil(W/2))``.
    """
    frames, height, width = luma.shape
    shape = (frames, (height + 1) // 2, (width + 1) // 2)
    u, v = np.empty(shape, np.uint8), np.empty(shape, np.uint8)
    kr, kb = YCBCR_MATRICES[matrix]
    _chroma(
        np.ascontiguousarray(luma.numpy()),
        lightness_of_codes(full_range),
        np.ascontiguousarray(ab.float().numpy()),
        _RGB_FROM_XYZ,
        _ENCODE_TABLE,
        kr,
        kb,
        255.0 if full_range else 224.0,
        u,
        v,
    )
    return torch.from_numpy(u), torch.from_numpy(v)
