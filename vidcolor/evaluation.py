"""The one scoring path: colorize colour ground truth turned grey, and measure it against it.

Training's validation, the model card (``scripts/model_card_metrics.py``) and ``vidcolor eval``
all score through :func:`colorize_variants` and :func:`score_frames`, and average with
:func:`mean_scores`, so the same photos give the same numbers everywhere.

Every score is a dict with the keys of ``PHOTO_METRICS`` (clips also ``CLIP_METRICS``). The grey
baseline (a = b = 0) is scored as the variant ``"grey"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from vidcolor import metrics
from vidcolor.color import lightness_to_luma, rgb_to_lab
from vidcolor.colorizer import Colorizer, upsample_ab
from vidcolor.decoding import Decoder, DecodeSettings, FilmState
from vidcolor.film.frames import rgb_of
from vidcolor.image import read_image
from vidcolor.perceptual import SetJudgement

PHOTO_METRICS = ("psnr", "ssim", "auc", "colourfulness", "true_colourfulness", "colourfulness_ratio", "delta_cf")
CLIP_METRICS = ("tae", "cdc", "true_cdc", "cdc_ratio")
GREY = "grey"
NETWORK_BATCH = 8
CLIP_SCORE_EVERY = 5  # per-frame image metrics of clips on every 5th frame


@dataclass
class Colorized:
    """One variant of some frames: ``rgb`` ``(T, 3, H, W)`` quantised to 8 bits as a written file
    would be, in [0, 1]; ``ab`` ``(T, 2, H, W)`` in Lab units."""

    rgb: torch.Tensor
    ab: torch.Tensor


def grey_image(lightness: torch.Tensor) -> torch.Tensor:
    """The grey baseline (a = b = 0) of ``(B, 1, H, W)`` L as exactly grey ``(B, 3, H, W)`` RGB."""
    return lightness_to_luma(lightness).expand(-1, 3, -1, -1)


def quantise(rgb: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] rounded to the 256 levels of an 8-bit file."""
    return torch.round(rgb.clamp(0, 1) * 255) / 255


def load_rgb(path: Path) -> torch.Tensor:
    """``(3, H, W)`` float RGB in [0, 1] of an image file (EXIF orientation applied)."""
    return torch.from_numpy(read_image(Path(path)).rgb).permute(2, 0, 1).contiguous()


def colorize_variants(
    colorizer: Colorizer,
    decodings: Iterable[str] | Mapping[str, DecodeSettings],
    lightness: torch.Tensor,
    film: bool = False,
) -> dict[str, Colorized]:
    """The grey baseline and each decoding of ``(T, 1, H, W)`` L in [0, 100] (network run once).

    ``decodings``: method names (the colorizer's settings with that method), or named settings.

    ``film``: the frames are consecutive frames of one clip, linked by a fresh
    :class:`FilmState` per decoding when its settings are temporal; otherwise every
    frame is colorized on its own, so a photo's colours never depend on what came before.
    Returns ``{"grey": ..., decoding: ...}`` in that order.
    """
    if not isinstance(decodings, Mapping):
        decodings = {m: replace(colorizer.decode, method=m) for m in decodings}
    model = colorizer.model
    decoders = {name: Decoder(s, model.bins, model.kind, colorizer.device) for name, s in decodings.items()}
    states = {name: FilmState() if film and s.temporal else None for name, s in decodings.items()}
    ab: dict[str, list[torch.Tensor]] = {m: [] for m in decoders}
    for chunk in lightness.split(NETWORK_BATCH):
        logits = colorizer.logits(chunk)
        for method, decoder in decoders.items():
            low = decoder.decode(logits, chunk, states[method])
            ab[method].append(upsample_ab(low, tuple(chunk.shape[-2:])).cpu().float())
    variants = {GREY: Colorized(quantise(grey_image(lightness)), torch.zeros_like(lightness).expand(-1, 2, -1, -1))}
    for method, parts in ab.items():
        full = torch.cat(parts)
        rgb = torch.cat([rgb_of(li, a) for li, a in zip(lightness.split(16), full.split(16), strict=True)])
        variants[method] = Colorized(quantise(rgb), full)
    return variants


def score_image(predicted_rgb: np.ndarray, predicted_ab: np.ndarray, true_rgb: np.ndarray, true_ab: np.ndarray) -> dict:
    """Metrics of ``(H, W, 3)`` RGB in [0, 1] and ``(H, W, 2)`` ab against the ground truth.

    Returns ``PHOTO_METRICS``: PSNR (dB, inf when exact), SSIM, AuC of the ab error, the
    colourfulness (Hasler & Suesstrunk) of prediction and truth, their ratio (nan for a grey
    truth) and delta-CF = |CF - CF_truth|.
    """
    colour = metrics.colourfulness(predicted_rgb)
    true_colour = metrics.colourfulness(true_rgb)
    return {
        "psnr": metrics.psnr(predicted_rgb, true_rgb),
        "ssim": metrics.ssim(predicted_rgb, true_rgb),
        "auc": metrics.ab_auc(predicted_ab, true_ab),
        "colourfulness": colour,
        "true_colourfulness": true_colour,
        "colourfulness_ratio": colour / true_colour if true_colour > 0 else float("nan"),
        "delta_cf": abs(colour - true_colour),
    }


def _hwc(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).double().numpy()


def score_frames(variants: dict[str, Colorized], truth_rgb: torch.Tensor, clip: bool = False) -> dict[str, dict]:
    """Scores of every variant against ``(T, 3, H, W)`` true RGB in [0, 1].

    A photo (T = 1) gets ``PHOTO_METRICS``; a clip (``clip=True``) the mean of those over every
    ``CLIP_SCORE_EVERY``-th frame plus ``CLIP_METRICS`` (TAE, and CDC beside the truth's CDC and
    their ratio: 1 is the truth's own flicker).
    """
    true_ab = torch.cat([rgb_to_lab(chunk.double()).float()[:, 1:] for chunk in truth_rgb.split(16)])
    frames = range(0, len(truth_rgb), CLIP_SCORE_EVERY if clip else 1)
    true_cdc = metrics.colour_distribution_consistency(truth_rgb.permute(0, 2, 3, 1).numpy()) if clip else None
    scores = {}
    for name, variant in variants.items():
        rows = [
            score_image(_hwc(variant.rgb[t]), _hwc(variant.ab[t]), _hwc(truth_rgb[t]), _hwc(true_ab[t])) for t in frames
        ]
        result = mean_scores(rows)
        if clip:
            result["tae"] = metrics.temporal_ab_error(
                variant.ab.permute(0, 2, 3, 1).numpy(), true_ab.permute(0, 2, 3, 1).numpy()
            )
            result["cdc"] = metrics.colour_distribution_consistency(variant.rgb.permute(0, 2, 3, 1).numpy())
            result["true_cdc"] = true_cdc
            result["cdc_ratio"] = result["cdc"] / true_cdc if true_cdc > 0 else float("nan")
        scores[name] = result
    return scores


def mean_scores(rows: list[dict]) -> dict[str, float]:
    """Mean of each metric over rows, skipping non-finite values (an exact PSNR's inf, a grey
    truth's nan ratio); inf when every value is inf, nan when none is finite."""
    out: dict[str, float] = {}
    for key in rows[0]:
        values = np.array([row[key] for row in rows], dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size:
            out[key] = float(finite.mean())
        else:
            out[key] = float("inf") if np.isposinf(values).all() else float("nan")
    return out


def photo_variants(
    colorizer: Colorizer, true_rgb: torch.Tensor, decodings: Iterable[str] | None = None
) -> dict[str, Colorized]:
    """The grey copy and each decoding (default: the colorizer's own) of a colour photo ``(3, H, W)``
    in [0, 1] turned grey (:func:`colorize_variants`)."""
    lab = rgb_to_lab(true_rgb[None].double()).float()
    return colorize_variants(colorizer, decodings or [colorizer.decode.method], lab[:, :1])


def score_photo(colorizer: Colorizer, true_rgb: torch.Tensor, decodings: Iterable[str] | None = None) -> dict:
    """Scores of a colour photo ``(3, H, W)`` in [0, 1]: ``{"grey": ..., decoding: ...}``.

    ``decodings`` default to the colorizer's own.
    """
    return score_frames(photo_variants(colorizer, true_rgb, decodings), true_rgb[None].float())


def evaluate_photos(
    colorizer: Colorizer,
    photos: Iterable[torch.Tensor],
    progress: Callable[[], None] | None = None,
    judgement: SetJudgement | None = None,
) -> dict:
    """Mean scores over colour photos (``(3, H, W)`` in [0, 1]) for the colorizer's decoding and grey.

    ``judgement``: also the perceptual figures (:mod:`vidcolor.perceptual`: Frechet distance and
    classifier agreement) of both, the photos keyed by their order.

    Returns:
        ``{"model": {...}, "grey": {...}, "images": N}``.
    """
    rows: dict[str, list[dict]] = {"model": [], GREY: []}
    for index, photo in enumerate(photos):
        variants = photo_variants(colorizer, photo)
        scores = score_frames(variants, photo[None].float())
        rows["model"].append(scores[colorizer.decode.method])
        rows[GREY].append(scores[GREY])
        if judgement is not None:
            rgb = {"model": variants[colorizer.decode.method].rgb, GREY: variants[GREY].rgb}
            judgement.add(str(index), photo[None], rgb, fixed=(GREY,))
        if progress is not None:
            progress()
    result = {"model": mean_scores(rows["model"]), GREY: mean_scores(rows[GREY]), "images": len(rows[GREY])}
    if judgement is not None:
        for name, figures in judgement.figures().items():
            result[name].update(figures)
    return result


def evaluate_paths(colorizer: Colorizer, paths: list[Path], progress: Callable[[], None] | None = None) -> dict:
    """:func:`evaluate_photos` of image files (read at full resolution)."""
    return evaluate_photos(colorizer, (load_rgb(path) for path in paths), progress)
