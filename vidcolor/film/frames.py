"""From lightness and ab to output pixels: the one copy, for films, photos and eval.

- :func:`rgb_of`: L ``(B, 1, H, W)`` and ab at any resolution -> R'G'B' in [0, 1] (ab upsampled
  bilinearly): eval's frames, the GPU film path (at chroma resolution), each photo tile.
- :func:`rgb_rows`: the same in tiles of rows for a full-resolution photo, without ever making
  its full-resolution ab.
- :func:`chroma_planes`: a batch of film luma planes -> the chroma planes of their colorization
  (on any device). The film's own luma plane Y' is kept; only the chroma planes (U = Cb,
  V = Cr, at 4:2:0 resolution) are computed: lightness L from Y', ab from the network, both
  brought to chroma resolution, converted to R'G'B' and then to Cb/Cr with the BT.601 or BT.709
  matrix (on the CPU in one fused numba pass, :mod:`vidcolor.film.frames_cpu`).
- :func:`make_chroma_function`: the pipeline's colour stage, decoded frames -> (U, V) planes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import av
import cv2
import numpy as np
import torch
from torch.nn import functional

from vidcolor.color import YCBCR_MATRICES, compose_lab, lab_to_rgb, lightness_of_codes
from vidcolor.colorizer import Colorizer, upsample_ab
from vidcolor.decoding import FilmState
from vidcolor.film.frames_cpu import chroma_from_ab
from vidcolor.film.source import ColourEncoding, plane_array


def rgb_of(lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` L in [0, 100] and ``(B, 2, h, w)`` ab (Lab units; upsampled bilinearly,
    ``align_corners=False``, when smaller) -> ``(B, 3, H, W)`` R'G'B' in [0, 1]."""
    return lab_to_rgb(compose_lab(lightness, upsample_ab(ab, tuple(lightness.shape[-2:]))))


def rgb_rows(
    lightness: torch.Tensor,
    ab: torch.Tensor,
    tile_rows: int,
    clamp: Callable[[torch.Tensor, slice], torch.Tensor] | None = None,
) -> Iterator[tuple[slice, torch.Tensor]]:
    """:func:`rgb_of` of one picture in tiles of ``tile_rows`` rows: yields each tile's rows and
    its ``(1, 3, rows, W)`` R'G'B'. ``lightness``: ``(1, 1, H, W)``; ``ab``: ``(1, 2, h, w)`` at
    the network's resolution (upsampled to the full width once, then row by row); ``clamp``: a
    function given each tile's full-resolution ab ``(1, 2, rows, W)`` and its rows, returning the
    ab to use (a photo's hinted pixels set to their hints)."""
    height, width = lightness.shape[-2:]
    wide = upsample_ab(ab, (ab.shape[-2], width))  # full width, network rows: small
    for top in range(0, height, tile_rows):
        rows = slice(top, min(height, top + tile_rows))
        tile = _upsample_rows(wide, rows, height)
        yield rows, rgb_of(lightness[..., rows, :], tile if clamp is None else clamp(tile, rows))


def _upsample_rows(ab: torch.Tensor, rows: slice, height: int) -> torch.Tensor:
    """Rows ``rows`` of the bilinear upsampling (``align_corners=False``, as
    :func:`~vidcolor.colorizer.upsample_ab`) of ``(1, 2, h, W)`` ab to ``height`` rows: a tile
    of the full-resolution ab without the whole of it. Returns ``(1, 2, len(rows), W)``."""
    low = ab.shape[-2]
    target = torch.arange(rows.start, rows.stop, dtype=torch.float64)
    source = ((target + 0.5) * (low / height) - 0.5).clamp_min(0.0)
    first = source.floor().long().clamp_max(low - 1)
    second = (first + 1).clamp_max(low - 1)
    weight = (source - first).float()[:, None]
    return ab[..., first, :] * (1.0 - weight) + ab[..., second, :] * weight


def luma_to_lightness_8bit(luma: torch.Tensor, full_range: bool) -> torch.Tensor:
    """uint8 Y' ``(B, H, W)`` -> L ``(B, 1, H, W)`` float32 in [0, 100], by table look-up.

    Y' has only 256 values, so the transfer function is evaluated 256 times instead of once per
    pixel (at 1920x1080 the per-pixel formula took a third of the film pipeline's time). On the
    CPU the look-up is NumPy's integer indexing, about 20x the formula; on a GPU, torch's.
    """
    table = lightness_of_codes(full_range)
    if luma.device.type == "cpu":
        return torch.from_numpy(table[luma.numpy()])[:, None]
    return torch.from_numpy(table).to(luma.device)[luma.long()][:, None]


def shrink_luma(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area average of a uint8 plane ``(H, W)`` down to ``(height, width)`` uint8.

    Where an integer factor f > 1 divides both sides and leaves the plane at least as large as
    asked, the plane is first averaged over f x f blocks, OpenCV's fast path: 1920x1080 to
    352x192 took 0.76 ms against 1.86 in one step of a non-integer ratio.
    """
    rows, columns = plane.shape
    factor = min(rows // height, columns // width)
    while factor > 1 and (rows % factor or columns % factor):
        factor -= 1
    if factor > 1:
        plane = cv2.resize(plane, (columns // factor, rows // factor), interpolation=cv2.INTER_AREA)
    if plane.shape != (height, width):
        plane = cv2.resize(plane, (width, height), interpolation=cv2.INTER_AREA)
    return plane


def rgb_to_chroma(rgb: torch.Tensor, full_range: bool, matrix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """R'G'B' ``(B, 3, h, w)`` in [0, 1] -> uint8 (Cb, Cr) planes, each ``(B, h, w)``."""
    kr, kb = YCBCR_MATRICES[matrix]
    red, green, blue = rgb.unbind(dim=1)
    luma = kr * red + (1.0 - kr - kb) * green + kb * blue
    cb = (blue - luma) / (2.0 * (1.0 - kb))
    cr = (red - luma) / (2.0 * (1.0 - kr))
    scale = 255.0 if full_range else 224.0
    to_uint8 = lambda c: (128.0 + scale * c).round().clamp(0, 255).to(torch.uint8)  # noqa: E731
    return to_uint8(cb), to_uint8(cr)


def chroma_planes(
    luma: torch.Tensor,
    colorizer: Colorizer,
    state: FilmState | None = None,
    *,
    full_range: bool = False,
    matrix: str = "bt601",
    times: list[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Colorize a batch of frames given by their luma planes.

    Args:
        luma: ``(B, H, W)`` uint8 Y' planes (on any device; computed on ``colorizer.device``).
        colorizer: the network and decoding.
        state: the film's temporal state (advanced over the batch), or None.
        full_range: Y' spans 0..255 (else 16..235) and so will Cb/Cr.
        matrix: ``bt601`` or ``bt709``.
        times: the frames' film times in seconds (for keyframes).
    Returns:
        ``(U, V)`` uint8 tensors ``(B, ceil(H/2), ceil(W/2))`` on ``colorizer.device``.
    """
    luma = luma.to(colorizer.device, non_blocking=True)
    if luma.device.type == "cpu":
        # No full-resolution float plane: the network's input is the 8-bit luma shrunk to its
        # size (area average) and then looked up; the chroma is one fused pass in numba.
        height, width = colorizer.network_shape(*luma.shape[-2:])
        small = np.stack([shrink_luma(frame, height, width) for frame in luma.numpy()])
        ab = colorizer.ab_lowres(luma_to_lightness_8bit(torch.from_numpy(small), full_range), state, times)
        return chroma_from_ab(luma, ab, full_range, matrix)
    height, width = luma.shape[-2:]
    chroma_size = ((height + 1) // 2, (width + 1) // 2)
    lightness = luma_to_lightness_8bit(luma, full_range)
    ab = colorizer.ab_lowres(lightness, state, times)
    return rgb_to_chroma(
        rgb_of(functional.interpolate(lightness, size=chroma_size, mode="area"), ab), full_range, matrix
    )


def make_chroma_function(
    colorizer: Colorizer, state: FilmState | None, encoding: ColourEncoding
) -> Callable[[list[av.VideoFrame]], list[tuple[np.ndarray, np.ndarray]]]:
    """A function from a list of yuv420p frames (in film order) to their new (U, V) planes
    (uint8 NumPy, half size), advancing ``state`` (whose keyframes, if any, colour their own
    frames at full resolution)."""
    pin = colorizer.device.type == "cuda"

    guide = state.guide if state is not None else None

    def colorize_chroma(frames: list[av.VideoFrame]) -> list[tuple[np.ndarray, np.ndarray]]:
        height, width = frames[0].height, frames[0].width
        luma = np.stack([plane_array(f.planes[0], height, width) for f in frames])
        tensor = torch.from_numpy(luma)
        if pin:
            tensor = tensor.pin_memory()
        tensor = tensor.to(colorizer.device, non_blocking=True)
        times = [frame_time(f) for f in frames] if guide is not None else None
        u, v = chroma_planes(
            tensor, colorizer, state, full_range=encoding.full_range, matrix=encoding.matrix, times=times
        )
        planes = list(zip(u.cpu().numpy(), v.cpu().numpy(), strict=True))
        for i, time in enumerate(times or []):
            if time in guide.exact:  # the keyframe is this frame: its own chroma, at full resolution
                planes[i] = keyframe_chroma(guide.exact[time].rgb, planes[i][0].shape, encoding)
        return planes

    return colorize_chroma


def frame_time(frame: av.VideoFrame) -> float | None:
    """A decoded frame's film time in seconds (None without a timestamp)."""
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


def keyframe_chroma(rgb: np.ndarray, shape: tuple[int, int], encoding: ColourEncoding) -> tuple[np.ndarray, np.ndarray]:
    """A keyframe's own chroma planes: ``(H, W, 3)`` float32 R'G'B' in [0, 1] area-averaged to the
    chroma ``shape`` and converted with the film's matrix and range. Returns uint8 (U, V)."""
    small = cv2.resize(rgb, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    u, v = rgb_to_chroma(torch.from_numpy(small).permute(2, 0, 1)[None], encoding.full_range, encoding.matrix)
    return u[0].numpy(), v[0].numpy()
