"""CIE Lab <-> sRGB conversions on batched torch tensors (any device).

The formulas follow scikit-image's ``rgb2lab`` / ``lab2rgb`` (D65 white point, 2 degree
observer, sRGB companding) so that results agree with it to within 0.05 Lab units and 1/255
RGB. Tensors are laid out ``(*, 3, H, W)``: the colour channel is the third from last.

Reference: IEC 61966-2-1 (sRGB); CIE 15:2004 (CIELAB).
"""

from __future__ import annotations

import numpy as np
import torch

# Normalisation constants shared by every model (Zhang et al.): the network sees
# (L - L_CENTER) / L_NORM and predicts ab / AB_NORM.
L_CENTER = 50.0
L_NORM = 100.0
AB_NORM = 110.0

# sRGB (linear) -> XYZ, as in scikit-image.
XYZ_FROM_RGB = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=torch.float64,
)
RGB_FROM_XYZ = torch.linalg.inv(XYZ_FROM_RGB)
# D65 white, 2 degree observer.
WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)

# (Kr, Kb) of the Y'CbCr luma equations Y' = Kr R' + (1 - Kr - Kb) G' + Kb B' (ITU-R BT.601, BT.709).
YCBCR_MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}

LAB_EPSILON = 0.008856  # (6/29)^3
LAB_KAPPA = 7.787  # (29/6)^2 / 3
LAB_F_OFFSET = 16.0 / 116.0
LAB_F_KNEE = 6.0 / 29.0  # f at the (6/29)^3 knee


def _check_channels(image: torch.Tensor, name: str) -> None:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(image).__name__}")
    if image.dim() < 3 or image.shape[-3] != 3:
        raise ValueError(f"{name} must have shape (*, 3, H, W), got {tuple(image.shape)}")


def _mix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 colour matrix to the channel axis of a ``(*, 3, H, W)`` tensor."""
    matrix = matrix.to(device=image.device, dtype=image.dtype)
    return torch.einsum("ij,...jhw->...ihw", matrix, image)


def _channel_vector(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(device=like.device, dtype=like.dtype).view(3, 1, 1)


def srgb_to_linear(value: torch.Tensor) -> torch.Tensor:
    """Undo the sRGB companding: gamma-encoded values in [0, 1] -> linear light in [0, 1]."""
    return torch.where(value > 0.04045, ((value + 0.055) / 1.055).clamp_min(0) ** 2.4, value / 12.92)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """Apply the sRGB companding: linear light -> gamma-encoded values (not clipped)."""
    return torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055, linear * 12.92)


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    """CIELAB's compander f(t): cube root above (6/29)^3, linear below."""
    return torch.where(t > LAB_EPSILON, t.clamp_min(LAB_EPSILON) ** (1.0 / 3.0), LAB_KAPPA * t + LAB_F_OFFSET)


def _lab_f_inverse(f: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_lab_f`."""
    return torch.where(f > LAB_F_KNEE, f**3, (f - LAB_F_OFFSET) / LAB_KAPPA)


def _lightness_from_f(fy: torch.Tensor) -> torch.Tensor:
    return 116.0 * fy - 16.0


def _f_from_lightness(lightness: torch.Tensor) -> torch.Tensor:
    return (lightness + 16.0) / 116.0


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """Convert sRGB to CIE Lab: linearise, to XYZ relative to white, compand, take differences.

    Args:
        rgb: ``(*, 3, H, W)`` float tensor, sRGB in [0, 1].
    Returns:
        ``(*, 3, H, W)`` tensor of the same dtype: L in [0, 100], a and b roughly in
        [-110, 110].
    """
    _check_channels(rgb, "rgb")
    if not rgb.is_floating_point():
        raise TypeError("rgb must be a floating-point tensor in [0, 1]")
    xyz = _mix(XYZ_FROM_RGB, srgb_to_linear(rgb)) / _channel_vector(WHITE_D65, rgb)
    fx, fy, fz = _lab_f(xyz).unbind(dim=-3)
    return torch.stack((_lightness_from_f(fy), 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Convert CIE Lab to sRGB, clipped to the displayable range (the steps of :func:`rgb_to_lab` reversed).

    Args:
        lab: ``(*, 3, H, W)`` float tensor: L in [0, 100], a, b in about [-128, 127].
    Returns:
        ``(*, 3, H, W)`` sRGB tensor in [0, 1] (out-of-gamut colours are clipped).
    """
    _check_channels(lab, "lab")
    lightness, a, b = lab.unbind(dim=-3)
    fy = _f_from_lightness(lightness)
    f = torch.stack((fy + a / 500.0, fy, (fy - b / 200.0).clamp_min(0.0)), dim=-3)
    xyz = _lab_f_inverse(f) * _channel_vector(WHITE_D65, lab)
    return linear_to_srgb(_mix(RGB_FROM_XYZ, xyz)).clamp(0.0, 1.0)


def luma_to_lightness(luma: torch.Tensor) -> torch.Tensor:
    """Lightness L of a grey image given by its (gamma-encoded) grey level.

    A grey sRGB pixel (v, v, v) has Y equal to the linearised v, so the grey level of a
    black-and-white frame maps exactly to L = 116 f(Y) - 16.

    Args:
        luma: ``(*, 1, H, W)`` grey level in [0, 1].
    Returns:
        ``(*, 1, H, W)`` L in [0, 100].
    """
    return _lightness_from_f(_lab_f(srgb_to_linear(luma)))


def lightness_to_luma(lightness: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`luma_to_lightness`: grey level in [0, 1] of L in [0, 100]."""
    return linear_to_srgb(_lab_f_inverse(_f_from_lightness(lightness))).clamp(0.0, 1.0)


def lightness_of_codes(full_range: bool = True) -> np.ndarray:
    """``(256,)`` float32: the lightness L in [0, 100] of each 8-bit grey code.

    ``full_range``: codes 0..255 span black to white (photos, full-range video); else 16..235
    do (limited-range video), clipped outside.
    """
    return _LIGHTNESS_OF_CODES[bool(full_range)]


def luma_to_unit(luma: torch.Tensor, full_range: bool) -> torch.Tensor:
    """Y' codes ``(B, H, W)`` (uint8 or float) -> grey level ``(B, 1, H, W)`` float in [0, 1]
    (full range: 0..255; limited range: 16..235, clipped outside)."""
    values = luma if luma.is_floating_point() else luma.float()
    unit = values / 255.0 if full_range else (values - 16.0) / 219.0
    return unit.clamp(0.0, 1.0)[:, None]


def _codes_to_lightness(full_range: bool) -> np.ndarray:
    codes = torch.arange(256, dtype=torch.float64)[None]
    return luma_to_lightness(luma_to_unit(codes, full_range)).float().reshape(256).numpy()


_LIGHTNESS_OF_CODES = {full: _codes_to_lightness(full) for full in (False, True)}


def normalize_lightness(lightness: torch.Tensor) -> torch.Tensor:
    """Map L in [0, 100] to the network's input range [-0.5, 0.5]."""
    return (lightness - L_CENTER) / L_NORM


def compose_lab(lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Join ``(*, 1, H, W)`` L and ``(*, 2, H, W)`` ab into ``(*, 3, H, W)`` Lab."""
    return torch.cat((lightness, ab), dim=-3)
