"""Still-image mode: read a photo, colorize it at full resolution, write it.

Reading accepts JPEG, PNG (8 and 16 bit), TIFF, WebP and BMP; grey, RGB (turned grey
first), RGBA/LA (alpha kept) and palette images; EXIF orientation is applied. The output is
the input's own lightness L at full resolution with the predicted ab upsampled to it.
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
from vidcolor.color import compose_lab, lab_to_rgb, rgb_to_lab
from vidcolor.colorizer import Colorizer
from vidcolor.errors import OutputError, VidcolorError
from vidcolor.inputs import IMAGE_SUFFIXES, check_photo_size
from vidcolor.partial import claim_partial

ALPHA_SUFFIXES = {".png", ".tif", ".tiff", ".webp"}
SIXTEEN_BIT_SUFFIXES = {".png", ".tif", ".tiff"}


@dataclass
class Picture:
    """A decoded image.

    ``rgb``: ``(H, W, 3)`` float32 in [0, 1]; ``alpha``: ``(H, W)`` float32 in [0, 1] or None;
    ``bits``: 8 or 16, the precision of the source.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bits: int


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
                grey = np.asarray(image, dtype=np.float32) / 65535.0
                return Picture(np.repeat(grey[..., None], 3, axis=2).clip(0, 1), None, 16)
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
            rgb = deep[..., :3].astype(np.float32) / 65535.0
            alpha = deep[..., 3].astype(np.float32) / 65535.0 if deep.shape[2] == 4 else None
            return Picture(rgb, alpha, 16)
    scaled = array.astype(np.float32) / 255.0
    if scaled.ndim == 2:
        return Picture(np.repeat(scaled[..., None], 3, axis=2), None, 8)
    alpha = scaled[..., 3] if scaled.shape[2] == 4 else None
    return Picture(np.ascontiguousarray(scaled[..., :3]), alpha, 8)


def colorize_picture(picture: Picture, colorizer: Colorizer) -> np.ndarray:
    """Colorize a picture's lightness at full resolution.

    Returns:
        ``(H, W, 3)`` float32 sRGB in [0, 1] whose L equals the input's (where not clipped).
    """
    rgb = torch.from_numpy(picture.rgb).permute(2, 0, 1)[None]
    lightness = rgb_to_lab(rgb)[:, :1]
    ab = colorizer.ab(lightness).cpu().float()
    out = lab_to_rgb(compose_lab(lightness, ab))
    return out[0].permute(1, 2, 0).numpy()


def write_image(path: Path, rgb: np.ndarray, alpha: np.ndarray | None, bits: int) -> list[str]:
    """Write ``(H, W, 3)`` RGB in [0, 1] (and alpha) atomically; returns notices for the user.

    The format follows the suffix; 16-bit sources stay 16-bit in PNG/TIFF. The file is written
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
    deep = bits == 16 and suffix in SIXTEEN_BIT_SUFFIXES
    scale, dtype = (65535.0, np.uint16) if deep else (255.0, np.uint8)
    channels = rgb if alpha is None else np.concatenate((rgb, alpha[..., None]), axis=2)
    pixels = np.round(np.clip(channels, 0, 1) * scale).astype(dtype)
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
        tmp.unlink(missing_ok=True)
    return notices


def reference_histogram(path: Path) -> np.ndarray:
    """``(23, 23)`` ab histogram (counts per grid cell) of a colour reference image.

    Raises:
        VidcolorError: the file cannot be read as an image.
    """
    picture = read_image(path)
    lab = rgb_to_lab(torch.from_numpy(picture.rgb).permute(2, 0, 1)[None])
    return ab_histogram(lab[:, 1:]).numpy()
