"""Which files vidcolor works on: tell images from films, expand folders, split held-out files.

One home for input discovery, used by ``vidcolor`` (colorize), ``vidcolor eval`` and
``vidcolor train``:

* :func:`sniff_kind` tells an image from a film by the file's content, not its name;
* :func:`expand_inputs` turns the folders among the command's inputs into the image and film
  files they hold;
* :func:`find_images` walks training and validation folders for images;
* :func:`is_held_out` is the file-name-hash split shared by ``train --hold-out`` and
  ``eval --held-out``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from vidcolor.errors import VidcolorError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".ogv"}
HIDDEN_PREFIX = "."  # work folders, partial files, the server's own folders, ._NAME metadata
# ffmpeg demuxers that take any file by its name or as raw bytes: never a film.
NOT_VIDEO_FORMATS = {"image2", "tty", "data", "rawvideo", "bin"}
# Pillow formats that may hold an animation (then read as a film when FFmpeg can).
ANIMATED_FORMATS = ("GIF", "WEBP", "PNG")
# The largest photo vidcolor reads: a 20000 x 15000 scan. Every photo's size is checked against
# it as soon as its header is read (check_photo_size), before any pixel is decoded; this takes
# the place of Pillow's own decompression-bomb guard, whose warnings would otherwise reach users.
MAX_PHOTO_PIXELS = 300_000_000
Image.MAX_IMAGE_PIXELS = None


def check_photo_size(path: Path, size: tuple[int, int]) -> None:
    """Raise :class:`VidcolorError` for a photo of ``size`` = (width, height) over the limit."""
    width, height = size
    if width * height > MAX_PHOTO_PIXELS:
        raise VidcolorError(
            f"{path}: {width}x{height} is {width * height / 1e6:.0f} megapixels, more than the "
            f"{MAX_PHOTO_PIXELS / 1e6:.0f} vidcolor reads"
        )


def sniff_kind(path: Path) -> str:
    """``"image"`` or ``"video"``, decided by the file's content.

    Raises:
        VidcolorError: missing, empty, a folder, or neither an image nor a video.
    """
    if not path.exists():
        raise VidcolorError(f"{path}: no such file")
    if path.is_dir():
        raise VidcolorError(f"{path}: is a folder")
    if path.stat().st_size == 0:
        raise VidcolorError(f"{path}: empty file")
    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) == 1 or image.format not in ANIMATED_FORMATS:
                check_photo_size(path, image.size)
                return "image"
    except UnidentifiedImageError:
        pass
    except OSError as error:
        raise VidcolorError(f"{path}: unreadable or truncated image ({error})") from None
    try:
        with av.open(str(path)) as container:
            name = container.format.name
            if name in NOT_VIDEO_FORMATS or name.endswith("_pipe"):
                raise VidcolorError(f"{path}: neither an image nor a video vidcolor can read")
            if container.streams.video:
                return "video"
            raise VidcolorError(f"{path}: has no video stream")
    except av.error.FFmpegError:
        raise VidcolorError(f"{path}: neither an image nor a video vidcolor can read") from None


def walk_files(folder: Path, recursive: bool = True, report: Callable[[str], None] | None = None) -> list[Path]:
    """The files in ``folder`` (and, if ``recursive``, in its sub-folders), sorted.

    Linked folders are followed, each real folder visited once: a link that leads back to a
    folder already walked (a loop) is skipped with a note to ``report``, as is a broken link.
    """
    files: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for root, folders, names in os.walk(folder, followlinks=True):
        here = Path(root)
        status = here.stat()
        if (status.st_dev, status.st_ino) in seen:
            if report is not None:
                report(f"{here}: skipped, a link back to {here.resolve()} (a loop)")
            folders.clear()
            continue
        seen.add((status.st_dev, status.st_ino))
        for name in names:
            path = here / name
            if path.is_file():
                files.append(path)
            elif path.is_symlink() and report is not None:
                report(f"{path}: skipped, a broken link")
        folders.sort()
        if not recursive:
            folders.clear()
    return sorted(files)


def few_names(paths: list[Path], shown: int = 3) -> str:
    """The first ``shown`` file names of ``paths``, comma-separated, with `` ...`` when there are more."""
    return ", ".join(p.name for p in paths[:shown]) + (" ..." if len(paths) > shown else "")


def expand_inputs(
    inputs: list[Path],
    recursive: bool = False,
    report: Callable[[str], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> list[Path]:
    """Folders become the image and video files they hold (sorted; sub-folders too if ``recursive``),
    less hidden ones (``.NAME``: another run's partial output, a copy's ``._NAME`` metadata), which
    are noted (``note``).

    Files are kept as given (their kind is sniffed later). A folder with no image or video file
    is passed to ``report`` (a callable taking the message) and skipped; without ``report`` it
    raises :class:`VidcolorError`. Links skipped while walking (loops, broken links) go to ``note``.
    """
    files: list[Path] = []
    for item in inputs:
        if not item.is_dir():
            files.append(item)
            continue
        wanted = IMAGE_SUFFIXES | VIDEO_SUFFIXES
        found = [p for p in walk_files(item, recursive, note) if p.suffix.lower() in wanted]
        hidden = [p for p in found if p.name.startswith(HIDDEN_PREFIX)]
        if hidden:
            found = [p for p in found if not p.name.startswith(HIDDEN_PREFIX)]
            if note is not None:
                note(f"{item}: skipped {len(hidden)} hidden file(s) ({few_names(hidden)})")
        if not found:
            message = f"{item}: no image or video files in this folder"
            if report is None:
                raise VidcolorError(message)
            report(message)
        files += found
    return files


def find_images(folders: list[Path], report: Callable[[str], None] | None = None) -> list[Path]:
    """All image files (by suffix) under the given folders, recursively, sorted, each once.

    A file given instead of a folder is kept as it is; links are followed as
    :func:`walk_files` does (loops and broken links noted to ``report``).

    Raises:
        FileNotFoundError: a folder does not exist.
    """
    found: list[Path] = []
    for folder in map(Path, folders):
        if not folder.exists():
            raise FileNotFoundError(f"{folder}: no such folder")
        if folder.is_file():
            found.append(folder)
            continue
        found += [p for p in walk_files(folder, report=report) if p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(set(found))


def is_held_out(path: Path, fraction: float) -> bool:
    """Whether ``path`` falls in the held-out ``fraction`` of its folder.

    Decided by a hash of the file name alone, so the split is the same on every machine and
    for every copy of a data set; ``vidcolor train --hold-out`` and ``vidcolor eval --held-out``
    agree on it.
    """
    if fraction <= 0:
        return False
    digest = hashlib.sha1(path.name.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction
