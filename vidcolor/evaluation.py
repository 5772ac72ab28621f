"""Colorize colour ground truth turned grey, and measure the result against it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vidcolor import metrics
from vidcolor.color import lab_to_rgb, lightness_to_luma, rgb_to_lab
from vidcolor.colorizer import Colorizer


@dataclass
class ImageScores:
    """Metrics of one colorization against its ground truth."""

    psnr: float
    ssim: float
    auc: float
    colourfulness: float
    true_colourfulness: float


def score_image(
    predicted_rgb: np.ndarray, predicted_ab: np.ndarray, true_rgb: np.ndarray, true_ab: np.ndarray
) -> ImageScores:
    """Metrics of ``(H, W, 3)`` RGB in [0, 1] and ``(H, W, 2)`` ab against the ground truth."""
    return ImageScores(
        psnr=metrics.psnr(predicted_rgb, true_rgb),
        ssim=metrics.ssim(predicted_rgb, true_rgb),
        auc=metrics.ab_auc(predicted_ab, true_ab),
        colourfulness=metrics.colourfulness(predicted_rgb),
        true_colourfulness=metrics.colourfulness(true_rgb),
    )


def grey_image(lightness: torch.Tensor) -> torch.Tensor:
    """The grey baseline (a = b = 0) of ``(B, 1, H, W)`` L as exactly grey ``(B, 3, H, W)`` RGB."""
    return lightness_to_luma(lightness).expand(-1, 3, -1, -1)


@torch.inference_mode()
def colorize_and_score(colorizer: Colorizer, true_rgb: torch.Tensor) -> tuple[ImageScores, ImageScores]:
    """Colorize the lightness of a colour image and score it, and the grey baseline.

    Args:
        colorizer: the model and decoding to test.
        true_rgb: ``(3, H, W)`` float RGB in [0, 1].
    Returns:
        ``(model scores, grey baseline scores)``; the baseline has a = b = 0.
    """
    lab = rgb_to_lab(true_rgb[None].double()).float()
    lightness = lab[:, :1]
    ab = colorizer.ab(lightness).cpu()
    predicted = torch.cat((lightness, ab), dim=1)

    def as_numpy(image: torch.Tensor) -> np.ndarray:
        return image[0].permute(1, 2, 0).double().numpy()

    # quantise to 8 bits as a written file would be
    predicted_rgb = np.round(as_numpy(lab_to_rgb(predicted)) * 255) / 255
    grey_rgb = np.round(as_numpy(grey_image(lightness)) * 255) / 255
    true_np = as_numpy(true_rgb[None])
    true_ab = as_numpy(lab[:, 1:])
    model_scores = score_image(predicted_rgb, as_numpy(ab), true_np, true_ab)
    grey_scores = score_image(grey_rgb, np.zeros_like(true_ab), true_np, true_ab)
    return model_scores, grey_scores


def mean_scores(scores: list[ImageScores]) -> dict[str, float]:
    """Mean of each metric over images (PSNR means skip infinities)."""
    out: dict[str, float] = {}
    for name in ImageScores.__dataclass_fields__:
        values = np.array([getattr(s, name) for s in scores], dtype=np.float64)
        finite = values[np.isfinite(values)]
        out[name] = float(finite.mean()) if finite.size else float("inf")
    return out


def load_rgb(path) -> torch.Tensor:
    """``(3, H, W)`` float RGB in [0, 1] of an image file (EXIF orientation applied)."""
    from vidcolor.image import read_image

    return torch.from_numpy(read_image(path).rgb).permute(2, 0, 1).contiguous()


def evaluate_paths(colorizer: Colorizer, paths: list, progress=None) -> dict:
    """Mean metrics over colour images, for the model and for the grey baseline.

    Returns:
        ``{"model": {...}, "grey": {...}, "images": N}`` with the keys of :class:`ImageScores`.
    """
    model_scores, grey_scores = [], []
    for path in paths:
        ours, grey = colorize_and_score(colorizer, load_rgb(path))
        model_scores.append(ours)
        grey_scores.append(grey)
        if progress is not None:
            progress()
    return {"model": mean_scores(model_scores), "grey": mean_scores(grey_scores), "images": len(paths)}
