"""Quality metrics for colorizations.

All functions take NumPy arrays laid out ``(H, W, C)``: RGB in [0, 1] (float) or ab in Lab
units. PSNR and SSIM are scikit-image's.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

AUC_THRESHOLDS = np.arange(0, 151, dtype=np.float64)  # ab error thresholds, Lab units


def psnr(predicted_rgb: np.ndarray, true_rgb: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of RGB images in [0, 1]; ``inf`` when identical."""
    if np.array_equal(predicted_rgb, true_rgb):
        return float("inf")
    return float(peak_signal_noise_ratio(true_rgb, predicted_rgb, data_range=1.0))


def ssim(predicted_rgb: np.ndarray, true_rgb: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004) of RGB images in [0, 1], averaged over channels."""
    window = min(7, *predicted_rgb.shape[:2])
    window -= 1 - window % 2  # odd
    return float(
        structural_similarity(true_rgb, predicted_rgb, data_range=1.0, channel_axis=-1, win_size=max(3, window))
    )


def colourfulness(rgb: np.ndarray) -> float:
    """Colourfulness M of Hasler & Suesstrunk (2003), on the 0..255 scale.

    M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2), with rg = R - G and
    yb = (R + G) / 2 - B. 0 for a grey image.
    """
    rgb255 = rgb.astype(np.float64) * 255.0
    red, green, blue = rgb255[..., 0], rgb255[..., 1], rgb255[..., 2]
    rg = red - green
    yb = 0.5 * (red + green) - blue
    spread = np.sqrt(rg.std() ** 2 + yb.std() ** 2)
    centre = np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(spread + 0.3 * centre)


def ab_auc(predicted_ab: np.ndarray, true_ab: np.ndarray, thresholds: np.ndarray = AUC_THRESHOLDS) -> float:
    """Area under the curve of pixels within an ab error threshold (Zhang et al.).

    For each threshold t in 0..150 the share of pixels whose Euclidean ab error is <= t;
    the AuC is the mean of those shares, in [0, 1] (1 when the prediction is exact).

    Args:
        predicted_ab, true_ab: ``(H, W, 2)`` ab in Lab units.
    """
    error = np.linalg.norm(predicted_ab.astype(np.float64) - true_ab, axis=-1).ravel()
    error.sort()
    within = np.searchsorted(error, thresholds, side="right") / error.size
    return float(within.mean())


def temporal_ab_error(predicted_ab: np.ndarray, true_ab: np.ndarray) -> float:
    """Temporal ab error TAE of a clip.

    mean over consecutive frames and pixels of |(pred[t] - pred[t-1]) - (gt[t] - gt[t-1])|,
    the norm taken over the two ab channels.

    Args:
        predicted_ab, true_ab: ``(T, H, W, 2)`` ab in Lab units, T >= 2.
    """
    if len(predicted_ab) < 2:
        raise ValueError("TAE needs at least two frames")
    change = np.diff(predicted_ab.astype(np.float64), axis=0) - np.diff(true_ab.astype(np.float64), axis=0)
    return float(np.linalg.norm(change, axis=-1).mean())


def colour_distribution_consistency(frames_rgb: np.ndarray, bins: int = 64) -> float:
    """Colour distribution consistency CDC of a clip.

    The mean, over consecutive frame pairs and the R, G, B channels, of the Jensen-Shannon
    divergence (base 2, in [0, 1]) between the two frames' ``bins``-bin channel histograms.
    0 when every frame has the same colour distribution.

    Args:
        frames_rgb: ``(T, H, W, 3)`` RGB in [0, 1], T >= 2.
    """
    if len(frames_rgb) < 2:
        raise ValueError("CDC needs at least two frames")
    histograms = np.stack(
        [[np.histogram(frame[..., c], bins=bins, range=(0.0, 1.0))[0] for c in range(3)] for frame in frames_rgb]
    ).astype(np.float64)
    histograms /= histograms.sum(axis=-1, keepdims=True)
    p, q = histograms[:-1], histograms[1:]
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log2(a / b), 0.0)
        return terms.sum(axis=-1)

    return float((0.5 * kl(p, m) + 0.5 * kl(q, m)).mean())
