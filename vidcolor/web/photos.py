"""The page's photos: each upload kept in a work folder with its colour result, re-rendered with
the page's settings and hints, written as the command line writes it.

State lives in :class:`PhotoDesk` (the photos by id and the colorizers built so far); the
colouring itself is :func:`vidcolor.image.colorize_picture`, the command line's.
"""

from __future__ import annotations

import io
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from vidcolor.batch import OUTPUT_TAG, default_output
from vidcolor.colorizer import Colorizer, ColorizerSpec
from vidcolor.errors import VidcolorError
from vidcolor.hints import read_hints
from vidcolor.image import Picture, colorize_picture, read_image, write_image
from vidcolor.web.files import Refused, refusal, store_upload

PREVIEW_SIDE = 1600  # the longest side of the pictures the page shows (downloads are full size)
KEPT_COLORIZERS = 3


@dataclass
class Photo:
    """One uploaded photo: its file, and its latest colour result (None before the first render)."""

    id: str
    name: str  # the client's file name, for the download
    source: Path
    width: int
    height: int
    result: Path | None = None
    seconds: float = 0.0  # the latest render's time
    notices: list[str] = field(default_factory=list)


class ColorizerCache:
    """Colorizers built from specs, the latest few kept (building loads and compiles a model);
    :meth:`use` hands one out under a lock, so one colorizer runs one picture at a time."""

    def __init__(self, keep: int = KEPT_COLORIZERS) -> None:
        self.keep = keep
        self.built: dict[ColorizerSpec, Colorizer] = {}
        self.lock = threading.Lock()

    def use(self, spec: ColorizerSpec) -> Colorizer:
        """The colorizer of ``spec`` (built when new; raises what :meth:`ColorizerSpec.build` raises).
        Call with :attr:`lock` held."""
        if spec not in self.built:
            if len(self.built) >= self.keep:
                self.built.pop(next(iter(self.built)))
            self.built[spec] = spec.build()
        return self.built[spec]


def colour_picture(
    picture: Picture, colorizers: ColorizerCache, spec: ColorizerSpec, hints: bytes | None, scratch: Path
) -> np.ndarray:
    """Colorize ``picture`` at full resolution with ``spec``'s colorizer, steered by the page's hint
    strokes (``hints``: PNG bytes of the picture's size, transparent = no hint, or None), read
    through the command line's hints reader from the file ``scratch`` (removed again).

    Returns:
        ``(H, W, 3)`` RGB of the picture's dtype (:func:`vidcolor.image.colorize_picture`).
    Raises:
        Refused: hints that are not a picture of its size.
    """
    hinted = None
    if hints is not None:
        scratch.write_bytes(hints)
        try:
            hinted = read_hints(scratch, picture.pixels.shape[:2])
        except VidcolorError as error:
            raise refusal("hints", error, scratch) from None
        finally:
            scratch.unlink(missing_ok=True)
    with colorizers.lock:
        return colorize_picture(picture, colorizers.use(spec), hinted)


def preview_png(path: Path, side: int = PREVIEW_SIDE) -> bytes:
    """A picture file as an 8-bit PNG whose longest side is at most ``side`` (for the page)."""
    with Image.open(path) as image:
        image.load()
        if image.mode not in ("RGB", "RGBA", "L"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        image.thumbnail((side, side))
        out = io.BytesIO()
        image.save(out, "PNG")
        return out.getvalue()


def grey_png(picture: Picture, side: int = PREVIEW_SIDE) -> bytes:
    """The grey copy the network sees, as an 8-bit PNG of at most ``side`` pixels a side."""
    pixels = picture.pixels
    if pixels.dtype == np.uint16:
        pixels = (pixels // 257).astype(np.uint8)
    image = Image.fromarray(pixels).convert("L")
    image.thumbnail((side, side))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class PhotoDesk:
    """The photos of this server's page, kept under ``folder``."""

    def __init__(self, folder: Path, colorizers: ColorizerCache, limit: int) -> None:
        self.folder = folder
        self.colorizers = colorizers
        self.limit = limit
        self.photos: dict[str, Photo] = {}

    def add(self, stream: BinaryIO, name: str) -> Photo:
        """Keep an uploaded photo. Raises :class:`Refused` for a file that is not a photo or too large."""
        path, _ = store_upload(stream, name, self.folder, ("image",), self.limit)
        try:
            picture = read_image(path)
        except VidcolorError as error:
            path.unlink(missing_ok=True)
            raise refusal(name, error, path) from None
        height, width = picture.pixels.shape[:2]
        photo = Photo(path.stem, name, path, width, height)
        self.photos[photo.id] = photo
        return photo

    def get(self, photo_id: str) -> Photo:
        """Raises :class:`Refused` for an id this page does not hold."""
        if photo_id not in self.photos:
            raise Refused(f"no photo {photo_id!r} on this page")
        return self.photos[photo_id]

    def render(self, photo_id: str, spec: ColorizerSpec, hints: bytes | None = None) -> Photo:
        """Colorize the photo at full resolution with ``spec`` (and a hint image of its size, PNG
        with alpha: transparent is no hint), writing it as the command line would
        (``NAME_color.EXT``: same format and bit depth); returns the photo, its result updated.

        Raises:
            Refused: hints that are not a picture of the photo's size.
            VidcolorError: the model or reference cannot be used.
        """
        photo = self.get(photo_id)
        started = time.perf_counter()
        picture = read_image(photo.source)
        rgb = colour_picture(picture, self.colorizers, spec, hints, self.folder / f".{photo.id}.hints.png")
        target = default_output(photo.source, "image")
        photo.notices = write_image(target, rgb, picture.alpha)
        photo.result = target
        photo.seconds = time.perf_counter() - started
        return photo

    def download_name(self, photo: Photo) -> str:
        """The result's name for the user: their file's stem with ``_color`` and the result's suffix."""
        return f"{Path(photo.name).stem}{OUTPUT_TAG}{photo.result.suffix if photo.result else ''}"

    def archive(self) -> bytes:
        """Every rendered result in one ZIP (each under its download name, numbered when two clash)."""
        out = io.BytesIO()
        names: set[str] = set()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            for photo in self.photos.values():
                if photo.result is None:
                    continue
                name, number = self.download_name(photo), 1
                while name in names:
                    number += 1
                    name = f"{Path(photo.name).stem}{OUTPUT_TAG}-{number}{photo.result.suffix}"
                names.add(name)
                archive.write(photo.result, name)
        return out.getvalue()
