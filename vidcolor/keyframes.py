"""Keyframes: colour images of chosen film frames that colour their shots (``--keyframes DIR``).

Each image in DIR (or, for a batch of films, in ``DIR/<film's stem>/``) is named by the frame it
colours (the name's stem):

- a frame number, ``000120.png`` (frame 120, counted from 0 at the film's start at its nominal
  frame rate: ``start + 120 / rate`` seconds);
- or a timestamp in seconds, ``t83.500.png`` (the frame shown at 83.5 s).

An image that is the frame itself (made from ``vidcolor frames FILM --at T -o DIR``) colours
that frame exactly and its shot through the motion and feature matching
(:mod:`vidcolor.guidance`); a colour photo of the same scene named the same way steers the shot
more loosely. Every image must have the film's aspect ratio; it is resized to the film's size.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn import functional

from vidcolor.bins import soft_encode
from vidcolor.color import YCBCR_MATRICES, rgb_to_lab
from vidcolor.colorizer import Colorizer
from vidcolor.errors import VidcolorError
from vidcolor.film.frames import luma_to_lightness_8bit, shrink_luma
from vidcolor.film.source import ColourEncoding, SourceFilm
from vidcolor.guidance import KeyMemory, ShotGuide, cells
from vidcolor.image import read_image, write_image
from vidcolor.inputs import HIDDEN_PREFIX, IMAGE_SUFFIXES

NAME_PATTERN = re.compile(r"^(?:(?P<frame>\d+)|t(?P<seconds>\d+(?:\.\d*)?))$")
NAMING = "name each keyframe by its frame number (000120.png) or its time in seconds (t83.500.png)"
ASPECT_TOLERANCE = 0.02  # relative difference of width / height allowed against the film's


@dataclass(frozen=True)
class KeyframeFile:
    """A keyframe image and the frame it names: ``frame`` (a number) or ``seconds`` (a time)."""

    path: Path
    frame: int | None = None
    seconds: float | None = None

    def time(self, start: float, frame_seconds: float) -> float:
        """The film time (seconds) of the frame it names, for a film starting at ``start``."""
        if self.seconds is not None:
            return self.seconds
        return start + self.frame * frame_seconds


def keyframes_folder(folder: Path, film: Path) -> Path | None:
    """Where ``film``'s keyframes are under ``--keyframes folder``: its own subfolder
    ``folder/<film's stem>/`` when there is one (for a batch of films), else ``folder`` itself
    when it holds images, else None (the film is colorized automatically)."""
    own = folder / film.stem
    if own.is_dir():
        return own
    if folder.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
        return folder
    return None


def keyframe_files(folder: Path) -> list[KeyframeFile]:
    """The keyframe images of ``folder`` (sorted by name).

    Raises:
        VidcolorError: the folder is missing, holds no image, or an image's name says no frame.
    """
    if not folder.is_dir():
        raise VidcolorError(f"--keyframes {folder}: not a folder")
    files: list[KeyframeFile] = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith(HIDDEN_PREFIX):
            continue
        match = NAME_PATTERN.match(path.stem)
        if match is None:
            raise VidcolorError(f"{path}: a keyframe's name must say its frame: {NAMING}")
        if match["frame"] is not None:
            files.append(KeyframeFile(path, frame=int(match["frame"])))
        else:
            files.append(KeyframeFile(path, seconds=float(match["seconds"])))
    if not files:
        raise VidcolorError(f"--keyframes {folder}: holds no image ({NAMING})")
    return files


def keyframes_fingerprint(files: list[KeyframeFile]) -> str:
    """A hash of the keyframes' names and contents: a changed keyframe changes the output."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.path.name}|".encode())
        digest.update(hashlib.sha256(file.path.read_bytes()).digest())
    return digest.hexdigest()


@dataclass
class Keyframe:
    """A loaded keyframe: the film time it colours and its ``(H, W, 3)`` float32 RGB in [0, 1]
    at the film's frame size."""

    time: float
    path: Path
    rgb: np.ndarray


def load_keyframes(files: list[KeyframeFile], film: SourceFilm) -> list[Keyframe]:
    """Read ``files`` for ``film``, sorted by time.

    Raises:
        VidcolorError: naming the file: unreadable, another aspect ratio than the film's, a
        time past the film's end, or two keyframes for one frame.
    """
    width, height = film.stream.codec_context.width, film.stream.codec_context.height
    start = float((film.stream.start_time or 0) * film.stream.time_base) if film.stream.time_base else 0.0
    end = film.declared_end[0] if film.declared_end is not None else None
    keyframes: list[Keyframe] = []
    for file in files:
        time = file.time(start, film.frame_seconds)
        if end is not None and time >= end:
            raise VidcolorError(f"{file.path}: {time:.3f} s is past the end of {film.path} ({end:.3f} s)")
        rgb = read_image(file.path).rgb
        rows, columns = rgb.shape[:2]
        if abs((columns / rows) / (width / height) - 1) > ASPECT_TOLERANCE:
            raise VidcolorError(
                f"{file.path}: {columns}x{rows} has another aspect ratio than the film's {width}x{height}"
            )
        if (rows, columns) != (height, width):
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        keyframes.append(Keyframe(time, file.path, np.ascontiguousarray(rgb, dtype=np.float32)))
    keyframes.sort(key=lambda k: k.time)
    for before, after in zip(keyframes, keyframes[1:], strict=False):
        if after.time - before.time < film.frame_seconds / 2:
            raise VidcolorError(f"{after.path}: the same frame as {before.path}")
    return keyframes


def luma_codes(rgb: np.ndarray, encoding: ColourEncoding) -> np.ndarray:
    """``(H, W, 3)`` R'G'B' in [0, 1] -> ``(H, W)`` uint8 Y' codes in the film's matrix and range."""
    kr, kb = YCBCR_MATRICES[encoding.matrix]
    luma = kr * rgb[..., 0] + (1.0 - kr - kb) * rgb[..., 1] + kb * rgb[..., 2]
    codes = luma * 255.0 if encoding.full_range else 16.0 + 219.0 * luma
    return np.clip(np.round(codes), 0, 255).astype(np.uint8)


def key_memory(keyframe: Keyframe, colorizer: Colorizer, encoding: ColourEncoding) -> KeyMemory:
    """A keyframe as the guide matches it, on the colorizer's device: its lightness made as the
    film's frames' is (from its Y' codes, at the network's input size), its colours over the
    model's bins on the output grid, and the network's descriptors of its cells."""
    height, width = colorizer.network_shape(*keyframe.rgb.shape[:2])
    luma = shrink_luma(luma_codes(keyframe.rgb, encoding), height, width)
    lightness = luma_to_lightness_8bit(torch.from_numpy(luma)[None], encoding.full_range)  # (1, 1, h, w)
    stride = colorizer.model.output_stride
    grid = (height // stride, width // stride)
    small = functional.interpolate(lightness, size=grid, mode="area")[0, 0] / 100
    rgb = torch.from_numpy(keyframe.rgb).permute(2, 0, 1)[None]
    ab = functional.interpolate(rgb_to_lab(rgb.double()).float()[:, 1:], size=grid, mode="area")
    device = colorizer.device
    small = small.to(device)
    colours = soft_encode(ab.to(device), colorizer.model.bins)[0].permute(1, 2, 0).contiguous()
    features = colorizer.features(lightness)
    cell_grid = tuple(features.shape[-2:]) if features is not None else (grid[0] // 2, grid[1] // 2)
    return KeyMemory(
        time=keyframe.time,
        rgb=keyframe.rgb,
        lightness=small,
        colours=colours,
        features=None if features is None else features[0].flatten(1).T.contiguous(),
        cell_lightness=cells(small[..., None], cell_grid)[:, 0],
        cell_colours=cells(colours, cell_grid),
    )


def shot_guide(keyframes: list[Keyframe], colorizer: Colorizer, film: SourceFilm) -> ShotGuide:
    """The guide state of a film (or a span of it) with these keyframes.

    Raises:
        VidcolorError: the model predicts ab directly (no distribution to guide).
    """
    if colorizer.model.kind != "classification":
        raise VidcolorError("--keyframes needs a classification model (this one predicts ab directly)")
    memories = [key_memory(keyframe, colorizer, film.encoding) for keyframe in keyframes]
    return ShotGuide(memories, film.frame_seconds)


def export_frames(path: Path, times: list[float], folder: Path) -> list[Path]:
    """Write the frames of the film at ``path`` nearest to each of ``times`` (seconds) into
    ``folder`` as PNG, named ``t<seconds>.png`` by the frame's own time (the name
    ``--keyframes`` reads); returns the files written.

    Raises:
        VidcolorError: the film cannot be read, or a time lies past its end.
    """
    wanted = sorted(set(times))
    nearest: dict[float, tuple[float, np.ndarray]] = {}
    with SourceFilm.open(path) as film:
        end = film.declared_end[0] if film.declared_end is not None else None
        for time in wanted:
            if time < 0 or (end is not None and time >= end):
                raise VidcolorError(f"{path}: --at {time:g} is outside the film (0 to {end:.3f} s)")
        for frame in film.container.decode(film.stream):
            if frame.pts is None:
                continue
            stamp = float(frame.pts * frame.time_base)
            for time in wanted:
                if time not in nearest or abs(stamp - time) < abs(nearest[time][0] - time):
                    nearest[time] = (stamp, frame.to_ndarray(format="rgb24"))
            if stamp > wanted[-1] + film.frame_seconds:
                break
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for time in wanted:
        if time not in nearest:
            raise VidcolorError(f"{path}: no frame found at {time:g} s")
        stamp, rgb = nearest[time]
        target = folder / f"t{stamp:.3f}.png"
        write_image(target, rgb)
        written.append(target)
    return written
