"""Training images: find them, load them once into memory, sample augmented batches.

Every image is resized (short side ``cache_size``), centre-cropped to a square and kept as
uint8 RGB in one ``(N, 3, S, S)`` tensor, so that batches are random crops and flips cut on
the training device, with no disk access during training.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from vidcolor.color import rgb_to_lab
from vidcolor.errors import VidcolorError
from vidcolor.image import read_image

GREY_CHROMA_THRESHOLD = 3.0  # mean |ab| below this (Lab units) counts as a grey image


@dataclass(frozen=True)
class DataSource:
    """A training folder and its share of the sampled images (None: in proportion to its size)."""

    folder: Path
    weight: float | None = None

    @classmethod
    def parse(cls, spec: str) -> DataSource:
        """``FOLDER`` or ``FOLDER=WEIGHT``.

        Raises:
            ValueError: a weight that is not a positive number.
        """
        folder, sep, weight = spec.rpartition("=")
        if not sep or Path(spec).exists():
            return cls(Path(spec))
        try:
            value = float(weight)
        except ValueError:
            raise ValueError(f"{spec}: the weight after '=' must be a number") from None
        if not value > 0:
            raise ValueError(f"{spec}: the weight after '=' must be positive")
        return cls(Path(folder), value)


def assign_sources(paths: list[Path], sources: list[DataSource]) -> list[int]:
    """For each image, the index of the deepest source folder that holds it.

    A folder given beside one of its own subfolders keeps only the images outside that
    subfolder, so ``train=0.5 train/faces=0.5`` samples faces and the rest half and half.
    """
    folders = [s.folder.resolve() for s in sources]
    owners = []
    for path in paths:
        resolved = path.resolve()
        best, depth = 0, -1
        for index, folder in enumerate(folders):
            if (resolved == folder or folder in resolved.parents) and len(folder.parts) > depth:
                best, depth = index, len(folder.parts)
        owners.append(best)
    return owners


def sampling_probabilities(owners: list[int], sources: list[DataSource]) -> torch.Tensor:
    """Per-image sampling probabilities ``(N,)`` float64 summing to 1.

    With no weights, every image is equally likely. With weights (all sources must have one),
    source s is drawn with probability weight_s / sum(weights), uniformly within it; a source
    left with no images gives its share to the others.

    Raises:
        ValueError: some sources have a weight and others do not.
    """
    given = [s.weight is not None for s in sources]
    owner = torch.tensor(owners, dtype=torch.long)
    if not any(given):
        return torch.full((len(owners),), 1.0 / max(1, len(owners)), dtype=torch.float64)
    if not all(given):
        raise ValueError("give every training folder a weight (FOLDER=WEIGHT), or none")
    counts = torch.bincount(owner, minlength=len(sources)).double()
    weights = torch.tensor([s.weight for s in sources], dtype=torch.float64) * (counts > 0)
    per_image = (weights / weights.sum() / counts.clamp_min(1))[owner]
    return per_image / per_image.sum()


def load_square(path: Path, size: int) -> np.ndarray | None:
    """Read an image as ``(size, size, 3)`` uint8 RGB (short side resized, centre crop), or None.

    Read as colorizing reads photos (:func:`vidcolor.image.read_image`: EXIF orientation
    applied, 16-bit files at full precision until the final rounding, alpha dropped); None for
    a file that cannot be read as an image.
    """
    try:
        rgb = read_image(path).rgb
    except VidcolorError:
        return None
    height, width = rgb.shape[:2]
    scale = size / min(height, width)
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(rgb, (new_width, new_height), interpolation=interpolation)
    left, top = (new_width - size) // 2, (new_height - size) // 2
    square = resized[top : top + size, left : left + size]
    return np.round(np.clip(square, 0.0, 1.0) * 255.0).astype(np.uint8)


def mean_chroma(rgb_uint8: torch.Tensor) -> torch.Tensor:
    """Mean |ab| per image of ``(N, 3, H, W)`` uint8 RGB; returns ``(N,)`` Lab units."""
    lab = rgb_to_lab(rgb_uint8.float() / 255.0)
    return torch.linalg.vector_norm(lab[:, 1:], dim=1).mean(dim=(1, 2))


@dataclass
class ImageSet:
    """Images held in memory. ``images``: ``(N, 3, S, S)`` uint8 RGB; ``paths``: their files."""

    images: torch.Tensor
    paths: list[Path]
    skipped_grey: int = 0
    skipped_unreadable: int = 0


def load_image_set(paths: list[Path], cache_size: int, workers: int = 2, progress=None) -> ImageSet:
    """Load, square-crop and keep the colour images among ``paths``.

    Unreadable files and near-grey images (mean |ab| < ``GREY_CHROMA_THRESHOLD``) are skipped
    and counted. ``progress`` is an optional callable run after each image.
    """
    arrays: list[np.ndarray] = []
    kept: list[Path] = []
    unreadable = 0

    def load(path: Path) -> np.ndarray | None:
        return load_square(path, cache_size)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for path, array in zip(paths, pool.map(load, paths), strict=True):
            if progress is not None:
                progress()
            if array is None:
                unreadable += 1
                continue
            arrays.append(array)
            kept.append(path)
    if not arrays:
        return ImageSet(torch.zeros(0, 3, cache_size, cache_size, dtype=torch.uint8), [], 0, unreadable)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    chroma = torch.cat([mean_chroma(chunk) for chunk in images.split(256)])
    colour = chroma >= GREY_CHROMA_THRESHOLD
    keep_paths = [p for p, c in zip(kept, colour.tolist(), strict=True) if c]
    return ImageSet(images[colour].contiguous(), keep_paths, int((~colour).sum()), unreadable)


def random_crops(images: torch.Tensor, crop: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random ``crop`` x ``crop`` windows with random horizontal flips.

    Args:
        images: ``(B, 3, S, S)`` uint8 or float images, S >= crop.
    Returns:
        ``(B, 3, crop, crop)`` float RGB in [0, 1].
    """
    b, _, s, _ = images.shape
    device = images.device
    offsets = torch.randint(0, s - crop + 1, (b, 2), generator=generator, device="cpu").to(device)
    rows = offsets[:, 0, None] + torch.arange(crop, device=device)  # (B, crop)
    cols = offsets[:, 1, None] + torch.arange(crop, device=device)
    flip = torch.rand(b, generator=generator, device="cpu").to(device) < 0.5
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch_index = torch.arange(b, device=device)[:, None, None]
    crops = images.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]]
    crops = crops.permute(0, 3, 1, 2)
    if crops.dtype == torch.uint8:
        return crops.float() / 255.0
    return crops.float()


def shifted_crops(
    images: torch.Tensor, crop: int, largest: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """:func:`random_crops` twice over: the crops, and the same crops moved by one random shift of
    up to ``largest`` pixels each way (the same shift for the batch).

    Args:
        images: ``(B, 3, S, S)`` uint8 or float images, S >= crop + 2 x largest.
    Returns:
        ``(B, 3, crop, crop)`` float RGB in [0, 1] twice, and the shift ``(dy, dx)``: the second
        crop's pixel (y, x) is the first's (y + dy, x + dx).
    """
    if images.shape[-1] < crop + 2 * largest:
        raise ValueError(f"a shifted pair of {crop} px crops needs images of {crop + 2 * largest} px")
    wide = random_crops(images, crop + 2 * largest, generator)
    dy, dx = (int(v) for v in torch.randint(-largest, largest + 1, (2,), generator=generator))
    first = wide[..., largest : largest + crop, largest : largest + crop]
    second = wide[..., largest + dy : largest + dy + crop, largest + dx : largest + dx + crop]
    return first, second, (dy, dx)


def film_grain(
    lightness: torch.Tensor, weakest: float, strongest: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gaussian grain for ``(B, 1, H, W)`` L: each image's standard deviation drawn from U(weakest,
    strongest) L units. Returns the ``(B, 1, H, W)`` noise (to add) on ``lightness``'s device."""
    b, _, h, w = lightness.shape
    noise = torch.randn(b, 1, h, w, generator=generator)
    sigma = weakest + (strongest - weakest) * torch.rand(b, 1, 1, 1, generator=generator)
    return (noise * sigma).to(lightness.device)


def degrade_lightness(lightness: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Old-film degradations applied to the network's input only.

    Each image independently gets, with probability 1/2 each: faded contrast, a sepia-like
    tone curve, blur, film grain, and a few vertical scratches.

    Args:
        lightness: ``(B, 1, H, W)`` L in [0, 100].
    Returns:
        ``(B, 1, H, W)`` degraded L in [0, 100].
    """
    b, _, h, w = lightness.shape
    device = lightness.device

    def chance() -> torch.Tensor:
        return (torch.rand(b, 1, 1, 1, generator=generator) < 0.5).to(device)

    def uniform(low: float, high: float) -> torch.Tensor:
        return (low + (high - low) * torch.rand(b, 1, 1, 1, generator=generator)).to(device)

    out = lightness
    # faded contrast: squeeze towards a raised black and lowered white
    floor, ceiling = uniform(0, 25), uniform(75, 100)
    out = torch.where(chance(), floor + out * (ceiling - floor) / 100.0, out)
    # sepia/toned print: a gamma-like tone curve
    gamma = uniform(0.7, 1.4)
    out = torch.where(chance(), 100.0 * (out.clamp(0, 100) / 100.0) ** gamma, out)
    # blur
    blurred = torch.nn.functional.avg_pool2d(out, 3, stride=1, padding=1, count_include_pad=False)
    out = torch.where(chance(), blurred, out)
    # film grain
    grain = film_grain(out, 1, 6, generator)
    out = torch.where(chance(), out + grain, out)
    # scratches: thin vertical lines, bright or dark
    columns = torch.rand(b, 1, 1, w, generator=generator).to(device) < 0.004
    value = torch.where(torch.rand(b, 1, 1, 1, generator=generator).to(device) < 0.5, 95.0, 10.0)
    out = torch.where(chance() & columns, value.expand_as(out), out)
    return out.clamp(0.0, 100.0)


def fade_chroma(
    ab: torch.Tensor, fraction: float, strongest: float = 0.35, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Low-colour scenes for the targets: ``fraction`` of the images get their ab scaled by U(0, strongest).

    Every training image is colourful (near-grey photos were dropped from the sets), while films are
    full of near-neutral walls, skies and clothes; faded copies teach the network that a scene's
    lightness alone does not promise colour.

    Args:
        ab: ``(B, 2, H, W)`` target ab in Lab units.
        fraction: share of the batch to fade, in [0, 1].
        strongest: the largest scale a faded image keeps.
    Returns:
        ``(B, 2, H, W)`` ab, the chosen images' scaled towards neutral, the rest unchanged.
    """
    b = ab.shape[0]
    chosen = torch.rand(b, 1, 1, 1, generator=generator) < fraction
    scale = torch.where(chosen, strongest * torch.rand(b, 1, 1, 1, generator=generator), torch.ones(b, 1, 1, 1))
    return ab * scale.to(ab.device, ab.dtype)


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Batches in one pass over ``num_images`` images."""
    return max(1, math.ceil(num_images / batch_size))
