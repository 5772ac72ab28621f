"""Colour hints on a photo (``--hints FILE``): the colours a user puts on chosen pixels.

A hints file is either

- an image the size of the photo: its transparent pixels (alpha 0), or in an image without
  alpha its black pixels, are no hint; every other pixel asks for its own colour;
- or JSON points, ``[{"x": 120, "y": 45, "colour": "#c03020"}, ...]`` (``colour`` also as
  ``[r, g, b]``, 0-255), each hinting a ``POINT_SIDE`` x ``POINT_SIDE`` square around (x, y).

A hint fixes the chroma (a, b) of its pixels; their lightness stays the photo's. The hints are
spread over the network's grid along the lightness edges (:func:`spread`: a diffusion whose
steps cost more across a lightness edge, on the Potts model's scale ``sigma``), and the spread colours
steer the network's distributions in proportion to their confidence
(:func:`~vidcolor.guidance.steer`, before decoding; in the MRF their marginals are fused into the
unary, clamping the hinted cells). The hinted pixels themselves take their hint's a, b at full
resolution.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidcolor.bins import soft_encode
from vidcolor.color import rgb_to_lab
from vidcolor.errors import VidcolorError

POINT_SIDE = 3
SPREAD_CELLS = 32.0  # the distance (grid cells of even lightness) at which a hint's confidence is 1/e


@dataclass
class Hints:
    """Hinted pixels of a ``shape`` = (H, W) photo: rows ``ys``, columns ``xs`` (int64, ``(n,)``)
    and their ``(n, 2)`` float32 ab in Lab units."""

    shape: tuple[int, int]
    ys: np.ndarray
    xs: np.ndarray
    ab: np.ndarray


def _ab_of(rgb: np.ndarray) -> np.ndarray:
    """``(n, 3)`` RGB in [0, 1] -> ``(n, 2)`` float32 ab."""
    lab = rgb_to_lab(torch.from_numpy(rgb.astype(np.float64)).T[None, :, :, None])
    return lab[0, 1:, :, 0].T.float().numpy()


def _colour(value: object, path: Path) -> np.ndarray:
    """A point's colour, ``"#rrggbb"`` or ``[r, g, b]``, as RGB in [0, 1]."""
    if isinstance(value, str) and len(value) == 7 and value.startswith("#"):
        try:
            return np.array([int(value[i : i + 2], 16) for i in (1, 3, 5)], np.float64) / 255
        except ValueError:
            pass
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, int | float) and 0 <= v <= 255 for v in value):
        return np.array(value, np.float64) / 255
    raise VidcolorError(f'{path}: a point\'s colour must be "#rrggbb" or [r, g, b] (0-255), not {value!r}')


def _points(path: Path, shape: tuple[int, int]) -> Hints:
    height, width = shape
    try:
        points = json.loads(path.read_text())
        if not isinstance(points, list):
            raise ValueError("not a list of points")
        placed = [(int(p["x"]), int(p["y"]), _colour(p["colour"], path)) for p in points]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise VidcolorError(f"{path}: not a hints file of points ({error})") from None
    ys, xs, colours = [], [], []
    half = POINT_SIDE // 2
    for x, y, colour in placed:
        if not (0 <= x < width and 0 <= y < height):
            raise VidcolorError(f"{path}: the point ({x}, {y}) lies outside the {width}x{height} photo")
        for row in range(max(0, y - half), min(height, y + half + 1)):
            for column in range(max(0, x - half), min(width, x + half + 1)):
                ys.append(row)
                xs.append(column)
                colours.append(colour)
    ab = _ab_of(np.array(colours)) if colours else np.zeros((0, 2), np.float32)
    return Hints(shape, np.array(ys, np.int64), np.array(xs, np.int64), ab)


def read_hints(path: Path, shape: tuple[int, int]) -> Hints:
    """The hints of ``path`` (an image or JSON points) for a photo of ``shape`` = (H, W).

    Raises:
        VidcolorError: naming the file: unreadable, of another size than the photo, or a point
        outside it.
    """
    from vidcolor.image import read_image  # the image module builds on the colorizer, which on this one

    if path.suffix.lower() == ".json":
        return _points(path, shape)
    picture = read_image(path)
    if picture.pixels.shape[:2] != shape:
        rows, columns = picture.pixels.shape[:2]
        raise VidcolorError(f"{path}: the hints are {columns}x{rows}, the photo {shape[1]}x{shape[0]}")
    rgb = picture.rgb
    hinted = picture.alpha > 0 if picture.alpha is not None else rgb.max(axis=2) > 0
    ys, xs = np.nonzero(hinted)
    return Hints(shape, ys.astype(np.int64), xs.astype(np.int64), _ab_of(rgb[ys, xs]))


def _shifted(maps: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """``maps`` ``(h, w, ...)`` moved by (dy, dx) cells: cell (y, x) holds (y - dy, x - dx); ``fill`` enters."""
    out = torch.full_like(maps, fill)
    h, w = maps.shape[:2]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = maps[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def spread(hints: Hints, lightness: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The hints on the network's grid, spread along the lightness edges: each cell takes the ab
    of the hinted cell nearest to it along the grid, where a step between neighbours costs
    ``1 + (L_i - L_j)^2 / sigma`` (so that a lightness edge is far to cross), and a confidence
    ``exp(-distance / SPREAD_CELLS)``.

    Args:
        hints: the photo's hints.
        lightness: ``(h, w)`` L in [0, 1] on the grid.
        sigma: the Potts model's lightness scale (:class:`~vidcolor.mrf.MRFSettings`).
    Returns:
        ``(h, w, 2)`` ab and ``(h, w)`` confidence in [0, 1] (1 on the hinted cells).
    """
    h, w = lightness.shape
    height, width = hints.shape
    cell = torch.from_numpy((hints.ys * h // height) * w + hints.xs * w // width)
    count = torch.zeros(h * w).index_add_(0, cell, torch.ones(len(cell)))
    total = torch.zeros(h * w, 2).index_add_(0, cell, torch.from_numpy(hints.ab))
    ab = (total / count.clamp_min(1)[:, None]).reshape(h, w, 2)
    distance = torch.where((count > 0).reshape(h, w), 0.0, math.inf)
    lightness = lightness.float()
    steps = [(1, 0), (-1, 0), (0, 1), (0, -1)]
    costs = [1.0 + (_shifted(lightness, dy, dx, 0.0) - lightness) ** 2 / sigma for dy, dx in steps]
    for _ in range(2 * (h + w)):  # relaxation until no distance shrinks (at most the grid's path lengths)
        changed = False
        for (dy, dx), cost in zip(steps, costs, strict=True):
            candidate = _shifted(distance, dy, dx, math.inf) + cost
            better = candidate < distance
            if better.any():
                changed = True
                distance = torch.where(better, candidate, distance)
                ab = torch.where(better[..., None], _shifted(ab, dy, dx, 0.0), ab)
        if not changed:
            break
    return ab, torch.exp(-distance / SPREAD_CELLS)


def hint_guide(
    hints: Hints, lightness: torch.Tensor, bins: torch.Tensor, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The hints as a guide on the grid: ``(h, w, Q)`` distributions over ``bins`` and ``(h, w)``
    confidence (see :func:`spread`)."""
    ab, confidence = spread(hints, lightness, sigma)
    guide = soft_encode(ab.permute(2, 0, 1)[None], bins.cpu())[0].permute(1, 2, 0).contiguous()
    return guide, confidence


def clamp_rows(ab: torch.Tensor, hints: Hints, rows: slice) -> torch.Tensor:
    """``(1, 2, len(rows), W)`` full-resolution ab of rows ``rows`` with the hinted pixels set to
    their hint's ab (in place; returned)."""
    inside = (hints.ys >= rows.start) & (hints.ys < rows.stop)
    if inside.any():
        ys = torch.from_numpy(hints.ys[inside] - rows.start)
        xs = torch.from_numpy(hints.xs[inside])
        ab[0, :, ys, xs] = torch.from_numpy(hints.ab[inside]).T.to(ab.dtype)
    return ab
