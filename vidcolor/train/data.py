"""Training images: find them, load them once into memory, sample augmented batches.

Every image is resized (short side ``cache_size``), centre-cropped to a square and kept as
uint8 RGB in one ``(N, 3, S, S)`` tensor, so that batches are random crops and flips cut on
the training device, with no disk access during training.
"""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vidcolor.color import rgb_to_lab
from vidcolor.image import IMAGE_SUFFIXES

GREY_CHROMA_THRESHOLD = 3.0  # mean |ab| below this (Lab units) counts as a grey image


def find_images(folders: list[Path]) -> list[Path]:
    """All image files (by suffix) under the given folders, recursively, sorted, each once.

    Raises:
        FileNotFoundError: a folder does not exist.
    """
    found: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.exists():
            raise FileNotFoundError(f"{folder}: no such folder")
        if folder.is_file():
            found.append(folder)
            continue
        found += [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
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


def _load_square(path: Path, size: int) -> np.ndarray | None:
    """Read an image as ``(size, size, 3)`` uint8 RGB (short side resized, centre crop)."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            scale = size / min(image.size)
            width, height = (max(size, round(d * scale)) for d in image.size)
            image = image.resize((width, height), Image.Resampling.BICUBIC)
            left, top = (width - size) // 2, (height - size) // 2
            return np.asarray(image.crop((left, top, left + size, top + size)))
    except (OSError, UnidentifiedImageError, ValueError):
        return None


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
        return _load_square(path, cache_size)

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
    grain = torch.randn(b, 1, h, w, generator=generator).to(device) * uniform(1, 6)
    out = torch.where(chance(), out + grain, out)
    # scratches: thin vertical lines, bright or dark
    columns = torch.rand(b, 1, 1, w, generator=generator).to(device) < 0.004
    value = torch.where(torch.rand(b, 1, 1, 1, generator=generator).to(device) < 0.5, 95.0, 10.0)
    out = torch.where(chance() & columns, value.expand_as(out), out)
    return out.clamp(0.0, 100.0)


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Batches in one pass over ``num_images`` images."""
    return max(1, math.ceil(num_images / batch_size))
