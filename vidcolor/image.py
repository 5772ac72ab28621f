"""Still-image mode: read a photo, colorize it at full resolution, write it.

Reading accepts JPEG, PNG (8 and 16 bit), TIFF, WebP and BMP; grey, RGB (turned grey
first), RGBA/LA (alpha kept) and palette images; EXIF orientation is applied. The output is
the input's own lightness L at full resolution with the predicted ab upsampled to it.

Memory: a photo is kept as decoded (8 or 16-bit integers), its lightness as one float plane
and the colours as one two-channel float plane; every conversion between them runs in tiles of
rows, so colorizing a grey 8-bit photo peaks at about 20 bytes per pixel above the program's
baseline (``benchmarks/bench_photo_memory.py``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from vidcolor.bins import ab_histogram
from vidcolor.color import lightness_of_codes, luma_to_lightness, rgb_to_lab
from vidcolor.colorizer import Colorizer
from vidcolor.errors import OutputError, VidcolorError
from vidcolor.film.frames import rgb_rows
from vidcolor.hints import Hints, clamp_rows
from vidcolor.inputs import IMAGE_SUFFIXES, check_photo_size
from vidcolor.partial import claim_partial, remove_partial

ALPHA_SUFFIXES = {".png", ".tif", ".tiff", ".webp"}
SIXTEEN_BIT_SUFFIXES = {".png", ".tif", ".tiff"}


# Pixels per tile of the colour conversions: their float temporaries stay near 25 MB.
TILE_PIXELS = 1 << 18


@dataclass
class Picture:
    """A decoded image, as decoded (no float copy).

    ``pixels``: ``(H, W)`` grey or ``(H, W, 3)`` RGB, uint8 or uint16; ``alpha``: ``(H, W)`` of the
    same dtype, or None.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None

    @property
    def bits(self) -> int:
        """8 or 16: the precision of the source."""
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def scale(self) -> float:
        """The integer value of white (255 or 65535)."""
        return 65535.0 if self.bits == 16 else 255.0

    @property
    def rgb(self) -> np.ndarray:
        """``(H, W, 3)`` float32 RGB in [0, 1] (a new array; grey repeated on the three channels)."""
        unit = self.pixels.astype(np.float32) / self.scale
        return np.repeat(unit[..., None], 3, axis=2) if unit.ndim == 2 else unit


# EXIF orientation -> the array operation that ImageOps.exif_transpose performs.
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def _sixteen_bit(path: Path, orientation: int) -> np.ndarray | None:
    """The pixels of a 16-bit colour PNG/TIFF via OpenCV (Pillow reduces them to 8 bits)."""
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16 or array.ndim != 3:
        return None
    array = cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA if array.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(_ORIENT.get(orientation, lambda a: a)(array))


def read_image(path: Path) -> Picture:
    """Decode an image file.

    Raises:
        VidcolorError: missing, empty, not an image, or truncated.
    """
    if not path.exists():
        raise VidcolorError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VidcolorError(f"{path}: empty file")
    try:
        with Image.open(path) as image:
            check_photo_size(path, image.size)
            image.load()
            orientation = image.getexif().get(0x0112, 1)
            image = ImageOps.exif_transpose(image)
            mode = image.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                grey = np.asarray(image)
                return Picture(grey if grey.dtype == np.uint16 else grey.clip(0, 65535).astype(np.uint16))
            if mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif mode == "PA":
                image = image.convert("RGBA")
            elif mode == "LA":
                image = image.convert("RGBA")
            elif mode not in ("RGB", "RGBA", "L"):
                image = image.convert("RGB")
            array = np.asarray(image)
    except UnidentifiedImageError:
        raise VidcolorError(f"{path}: not an image (or a format vidcolor cannot read)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise VidcolorError(f"{path}: unreadable or truncated image ({error})") from None
    if path.suffix.lower() in SIXTEEN_BIT_SUFFIXES:
        deep = _sixteen_bit(path, orientation)
        if deep is not None:
            array = deep
    if array.ndim == 3 and array.shape[2] == 4:
        return Picture(np.ascontiguousarray(array[..., :3]), np.ascontiguousarray(array[..., 3]))
    return Picture(np.ascontiguousarray(array))


def _tile_rows(width: int) -> int:
    """Rows per tile of a picture ``width`` wide (about ``TILE_PIXELS`` pixels a tile)."""
    return max(1, TILE_PIXELS // max(1, width))


def _row_tiles(height: int, width: int) -> list[slice]:
    rows = _tile_rows(width)
    return [slice(top, min(height, top + rows)) for top in range(0, height, rows)]


def picture_lightness(picture: Picture) -> torch.Tensor:
    """``(1, 1, H, W)`` float32 lightness L in [0, 100] of a picture (of its grey version).

    8-bit grey photos by table look-up; the others converted in tiles of rows.
    """
    pixels = picture.pixels
    if pixels.ndim == 2 and pixels.dtype == np.uint8:
        return torch.from_numpy(lightness_of_codes(full_range=True)[pixels])[None, None]
    height, width = pixels.shape[:2]
    lightness = torch.empty(1, 1, height, width)
    for rows in _row_tiles(height, width):
        unit = torch.from_numpy(pixels[rows].astype(np.float32) / picture.scale)
        if unit.dim() == 2:
            lightness[0, 0, rows] = luma_to_lightness(unit)
        else:
            lightness[0, :, rows] = rgb_to_lab(unit.permute(2, 0, 1))[:1]
    return lightness


def colorize_picture(picture: Picture, colorizer: Colorizer, hints: Hints | None = None) -> np.ndarray:
    """Colorize a picture's lightness at full resolution (steered by its colour ``hints``, whose
    pixels take their hint's a, b).

    Returns:
        ``(H, W, 3)`` RGB of the picture's dtype (uint8 or uint16) whose L equals the input's
        (where not clipped).
    """
    lightness = picture_lightness(picture)
    height, width = lightness.shape[-2:]
    low = colorizer.ab_lowres(lightness, hints=hints).cpu().float()
    out = np.empty((height, width, 3), picture.pixels.dtype)
    clamp = (lambda ab, rows: clamp_rows(ab, hints, rows)) if hints is not None else None
    for rows, rgb in rgb_rows(lightness, low, _tile_rows(width), clamp):
        out[rows] = (rgb[0].permute(1, 2, 0) * picture.scale).round_().numpy().astype(out.dtype)
    return out


def write_image(path: Path, rgb: np.ndarray, alpha: np.ndarray | None = None) -> list[str]:
    """Write ``(H, W, 3)`` uint8 or uint16 RGB (and ``(H, W)`` alpha of the same dtype) atomically;
    returns notices for the user.

    The format follows the suffix; 16-bit pictures stay 16-bit in PNG/TIFF (elsewhere they are
    rounded to 8 bits). The file is written
    to a hidden partial file beside ``path`` (:mod:`vidcolor.partial`) and renamed, so no half
    file is ever left.
    """
    notices: list[str] = []
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise VidcolorError(f"{path}: unsupported output format {path.suffix!r}")
    if alpha is not None and suffix not in ALPHA_SUFFIXES:
        notices.append(f"{path}: {path.suffix} has no alpha channel; transparency dropped")
        alpha = None
    deep = rgb.dtype == np.uint16 and suffix in SIXTEEN_BIT_SUFFIXES
    pixels = rgb if alpha is None else np.concatenate((rgb, alpha[..., None]), axis=2)
    if pixels.dtype == np.uint16 and not deep:
        pixels = ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    try:
        tmp, stale = claim_partial(path)
    except OSError as error:
        raise OutputError(path, error) from None
    notices += stale
    try:
        if deep:
            order = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
            if not cv2.imwrite(str(tmp), cv2.cvtColor(pixels, order)):
                raise OutputError(path, "OpenCV could not encode it")
        else:
            image = Image.fromarray(pixels, "RGBA" if pixels.shape[2] == 4 else "RGB")
            options = {"quality": 95} if suffix in (".jpg", ".jpeg", ".webp") else {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image.save(tmp, **options)
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except OSError as error:
        raise OutputError(path, error) from None
    finally:
        remove_partial(tmp)
    return notices


def reference_histogram(path: Path) -> np.ndarray:
    """``(23, 23)`` ab histogram (counts per grid cell) of a colour reference image.

    Raises:
        VidcolorError: the file cannot be read as an image.
    """
    picture = read_image(path)
    lab = rgb_to_lab(torch.from_numpy(picture.rgb).permute(2, 0, 1)[None])
    return ab_histogram(lab[:, 1:]).numpy()
