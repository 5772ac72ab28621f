"""The files the web page may touch: paths inside the served folder only, uploads checked before
they are kept.

Nothing the browser sends is used as a path as it is: a relative path is resolved and must stay
inside the served folder (:func:`inside`), and an upload is stored under a name the server makes
(:func:`store_upload`), sniffed by content and removed again when it is not what was asked for.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import BinaryIO

from vidcolor.errors import VidcolorError
from vidcolor.inputs import HIDDEN_PREFIX, IMAGE_SUFFIXES, VIDEO_SUFFIXES, sniff_kind, walk_files

UPLOAD_CHUNK = 1 << 20


class Refused(VidcolorError):
    """A request the server will not carry out; its message is shown on the page."""


def refusal(name: str, error: VidcolorError, path: Path) -> Refused:
    """The page's message for ``error`` about the file at ``path``, which the user knows as ``name``."""
    return Refused(f"{name}: {str(error).removeprefix(f'{path}: ')}")


def inside(root: Path, relative: str) -> Path:
    """The path ``relative`` names under ``root``, resolved (links followed).

    Raises:
        Refused: empty, absolute, or leading outside ``root`` (``..``, a link out of it).
    """
    if not relative or "\x00" in relative or Path(relative).is_absolute():
        raise Refused(f"{relative!r}: not a path inside the served folder")
    base = root.resolve()
    candidate = (base / relative).resolve()
    if candidate != base and base not in candidate.parents:
        raise Refused(f"{relative!r}: not a path inside the served folder")
    return candidate


def relative_name(root: Path, path: Path) -> str:
    """``path`` (inside ``root``) as the page names it: relative, with forward slashes."""
    return path.resolve().relative_to(root.resolve()).as_posix()


def served_files(root: Path) -> list[Path]:
    """The files under ``root`` (resolved) that the page may name: neither hidden (a name starting
    with ``.``, or under such a folder) nor reached through a link leading out of ``root``."""
    base = root.resolve()
    kept = []
    for path in walk_files(base):
        if any(part.startswith(HIDDEN_PREFIX) for part in path.relative_to(base).parts):
            continue
        if base in path.resolve().parents:
            kept.append(path)
    return kept


def list_media(root: Path) -> list[dict[str, str]]:
    """The photos and films of :func:`served_files` by suffix:
    ``[{"path": relative name, "kind": "image" | "video"}]``, sorted by path."""
    media = []
    for path in served_files(root):
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
            kind = "image" if suffix in IMAGE_SUFFIXES else "video"
            media.append({"path": path.relative_to(root.resolve()).as_posix(), "kind": kind})
    return media


def safe_stem(name: str) -> str:
    """A file stem made of the client's file name's letters, digits, ``-`` and ``_`` (at most 60),
    or ``upload``; never a path."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name.replace("\\", "/")).stem).strip("_.")
    return stem[:60] or "upload"


def store_upload(stream: BinaryIO, name: str, folder: Path, kinds: tuple[str, ...], limit: int) -> tuple[Path, str]:
    """Keep an uploaded file in ``folder`` under a name made here (the client's name cleaned,
    a unique suffix, the suffix its content calls for); returns the path and its kind.

    Args:
        stream: the upload's bytes.
        name: the client's file name (only its letters and suffix are used).
        kinds: what is accepted, of ``"image"`` and ``"video"``.
        limit: the most bytes accepted.
    Raises:
        Refused: larger than ``limit``, or not one of ``kinds`` (nothing is left on disk).
    """
    folder.mkdir(parents=True, exist_ok=True)
    suffix = Path(name).suffix.lower()
    if suffix not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
        suffix = ""
    stem = safe_stem(name)
    path = folder / f"{stem}-{uuid.uuid4().hex[:8]}{suffix}"
    written = 0
    try:
        with path.open("xb") as out:
            while chunk := stream.read(UPLOAD_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise Refused(f"{name}: larger than the {limit / 1e6:.0f} MB upload limit")
                out.write(chunk)
        try:
            kind = sniff_kind(path)
        except VidcolorError as error:
            raise refusal(name, error, path) from None
        if kind not in kinds:
            wanted = " or ".join("a photo" if k == "image" else "a film" for k in kinds)
            raise Refused(f"{name}: not {wanted}")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if not suffix:
        fixed = path.with_suffix(".png" if kind == "image" else ".mkv")
        path = path.rename(fixed)
    return path, kind
