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


CDC_GAPS = (1, 2, 4)  # frame gaps of the published CDC


def _js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence in nats between distributions along the last axis."""
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log(a / b), 0.0)
        return terms.sum(axis=-1)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def colour_distribution_consistency(frames_rgb: np.ndarray, gaps: tuple[int, ...] = CDC_GAPS) -> float:
    """Colour distribution consistency CDC of a clip, as the video-colorization papers compute it
    (TCVC, ColorMNet, the NTIRE 2023 challenge).

    Per R, G, B channel, each frame's 256-bin histogram of its 8-bit values divided by the pixel
    count; the Jensen-Shannon divergence (natural logarithm, so in [0, ln 2]) between frames t and
    t + d, averaged over t, for each gap d in ``gaps``; the mean over the gaps and channels. 0 when
    every frame has the same colour distribution; lower is steadier (a grey copy scores low, so
    compare with the truth's own CDC). Gaps longer than the clip are left out.

    Args:
        frames_rgb: ``(T, H, W, 3)`` RGB in [0, 1] (rounded to 8 bits), or uint8; T >= 2.
    """
    if len(frames_rgb) < 2:
        raise ValueError("CDC needs at least two frames")
    values = frames_rgb if frames_rgb.dtype == np.uint8 else np.round(np.clip(frames_rgb, 0, 1) * 255).astype(np.uint8)
    pixels = values.shape[1] * values.shape[2]
    histograms = (
        np.stack([[np.bincount(frame[..., c].ravel(), minlength=256) for c in range(3)] for frame in values]).astype(
            np.float64
        )
        / pixels
    )  # (T, 3, 256)
    per_gap = [
        _js_divergence(histograms[:-gap], histograms[gap:]).mean(axis=0)  # (3,): mean over t per channel
        for gap in gaps
        if gap < len(histograms)
    ]
    return float(np.mean(per_gap))
