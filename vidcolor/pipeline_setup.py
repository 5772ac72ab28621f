"""Build a :class:`Colorizer` from command-line choices and the model card's defaults."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidcolor.bins import ANNEAL_TEMPERATURE, ab_histogram
from vidcolor.color import rgb_to_lab
from vidcolor.colorizer import Colorizer, resolve_device
from vidcolor.decoding import DecodeSettings
from vidcolor.errors import VidcolorError
from vidcolor.models import load_model, model_card
from vidcolor.mrf import MRFSettings

DEFAULT_MRF = MRFSettings()


def reference_histogram(path: Path) -> np.ndarray:
    """``(23, 23)`` ab histogram (counts per grid cell) of a colour reference image."""
    from vidcolor.image import read_image

    picture = read_image(path)
    lab = rgb_to_lab(torch.from_numpy(picture.rgb).permute(2, 0, 1)[None])
    return ab_histogram(lab[:, 1:]).numpy()


def default_decoding(model: str) -> DecodeSettings:
    """The decoding a model's card recommends, else the annealed mean (T = 0.38)."""
    card = model_card(model) if model.endswith(".safetensors") or model == "default" else {}
    chosen = card.get("default_decoding") or {}
    return DecodeSettings(chosen.get("method", "annealed"), float(chosen.get("temperature", ANNEAL_TEMPERATURE)))


def build_colorizer(
    model: str,
    size: int,
    device: str,
    decode_method: str | None,
    temperature: float | None,
    mrf: MRFSettings = DEFAULT_MRF,
    temporal: bool = True,
    reference: Path | None = None,
) -> Colorizer:
    """Load ``model`` and wrap it with the chosen (or the model's default) decoding."""
    network = load_model(model)
    preferred = default_decoding(model)
    method = decode_method or preferred.method
    if temperature is None:
        temperature = preferred.temperature if method == preferred.method else ANNEAL_TEMPERATURE
    if network.kind == "regression" and decode_method not in (None, "annealed"):
        raise VidcolorError(f"{model}: predicts ab directly, so --decode {decode_method} does not apply to it")
    histogram = reference_histogram(reference) if reference is not None else None
    settings = DecodeSettings(method, temperature, mrf=mrf, temporal=temporal, reference=histogram)
    return Colorizer(network, resolve_device(device), size, settings)
