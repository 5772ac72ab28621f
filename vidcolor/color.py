"""CIE Lab <-> sRGB conversions on batched torch tensors (any device).

The formulas follow scikit-image's ``rgb2lab`` / ``lab2rgb`` (D65 white point, 2 degree
observer, sRGB companding) so that results agree with it to within 0.05 Lab units and 1/255
RGB. Tensors are laid out ``(*, 3, H, W)``: the colour channel is the third from last.

Reference: IEC 61966-2-1 (sRGB); CIE 15:2004 (CIELAB).
"""

from __future__ import annotations

import torch

# Normalisation constants shared by every model (Zhang et al.): the network sees
# (L - L_CENTER) / L_NORM and predicts ab / AB_NORM.
L_CENTER = 50.0
L_NORM = 100.0
AB_NORM = 110.0

# sRGB (linear) -> XYZ, as in scikit-image.
_XYZ_FROM_RGB = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=torch.float64,
)
_RGB_FROM_XYZ = torch.linalg.inv(_XYZ_FROM_RGB)
# D65 white, 2 degree observer.
_WHITE = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)

_EPSILON = 0.008856  # (6/29)^3
_KAPPA = 7.787  # (29/6)^2 / 3
_F_OFFSET = 16.0 / 116.0


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


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """Convert sRGB to CIE Lab.

    Args:
        rgb: ``(*, 3, H, W)`` float tensor, sRGB in [0, 1].
    Returns:
        ``(*, 3, H, W)`` tensor of the same dtype: L in [0, 100], a and b roughly in
        [-110, 110].
    """
    _check_channels(rgb, "rgb")
    if not rgb.is_floating_point():
        raise TypeError("rgb must be a floating-point tensor in [0, 1]")
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).clamp_min(0) ** 2.4, rgb / 12.92)
    xyz = _mix(_XYZ_FROM_RGB, linear) / _channel_vector(_WHITE, rgb)
    f = torch.where(xyz > _EPSILON, xyz.clamp_min(_EPSILON) ** (1.0 / 3.0), _KAPPA * xyz + _F_OFFSET)
    fx, fy, fz = f.unbind(dim=-3)
    lightness = 116.0 * fy - 16.0
    a = 500.0 * (fx - fy)
    b = 200.0 * (fy - fz)
    return torch.stack((lightness, a, b), dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Convert CIE Lab to sRGB, clipped to the displayable range.

    Args:
        lab: ``(*, 3, H, W)`` float tensor: L in [0, 100], a, b in about [-128, 127].
    Returns:
        ``(*, 3, H, W)`` sRGB tensor in [0, 1] (out-of-gamut colours are clipped).
    """
    _check_channels(lab, "lab")
    lightness, a, b = lab.unbind(dim=-3)
    fy = (lightness + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = (fy - b / 200.0).clamp_min(0.0)
    f = torch.stack((fx, fy, fz), dim=-3)
    xyz = torch.where(f > 0.2068966, f**3, (f - _F_OFFSET) / _KAPPA)
    xyz = xyz * _channel_vector(_WHITE, lab)
    linear = _mix(_RGB_FROM_XYZ, xyz)
    rgb = torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055, linear * 12.92)
    return rgb.clamp(0.0, 1.0)


def luma_to_lightness(luma: torch.Tensor) -> torch.Tensor:
    """Lightness L of a grey image given by its (gamma-encoded) grey level.

    A grey sRGB pixel (v, v, v) has L = 116 f(Y) - 16 with Y the linearised v, so the
    grey level of a black-and-white frame maps exactly to L.

    Args:
        luma: ``(*, 1, H, W)`` grey level in [0, 1].
    Returns:
        ``(*, 1, H, W)`` L in [0, 100].
    """
    linear = torch.where(luma > 0.04045, ((luma + 0.055) / 1.055).clamp_min(0) ** 2.4, luma / 12.92)
    f = torch.where(linear > _EPSILON, linear.clamp_min(_EPSILON) ** (1.0 / 3.0), _KAPPA * linear + _F_OFFSET)
    return 116.0 * f - 16.0


def lightness_to_luma(lightness: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`luma_to_lightness`: grey level in [0, 1] of L in [0, 100]."""
    f = (lightness + 16.0) / 116.0
    linear = torch.where(f > 0.2068966, f**3, (f - _F_OFFSET) / _KAPPA)
    return torch.where(
        linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055, linear * 12.92
    ).clamp(0.0, 1.0)


def normalize_lightness(lightness: torch.Tensor) -> torch.Tensor:
    """Map L in [0, 100] to the network's input range [-0.5, 0.5]."""
    return (lightness - L_CENTER) / L_NORM


def compose_lab(lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Join ``(*, 1, H, W)`` L and ``(*, 2, H, W)`` ab into ``(*, 3, H, W)`` Lab."""
    return torch.cat((lightness, ab), dim=-3)
