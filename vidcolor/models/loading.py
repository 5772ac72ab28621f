"""Building networks by architecture name, and reading and writing their weight files.

``load_model(spec)`` accepts:

* ``None`` or ``"default"``: the model shipped in ``vidcolor/weights``;
* a ``.safetensors`` file written by ``vidcolor train`` (architecture and configuration in its
  metadata);
* a training checkpoint ``.pt`` of ``vidcolor train``;
* Zhang et al.'s released ``colorization_release_v2-9b330a0b.pth`` (ECCV16) or
  ``siggraph17-df00044c.pth`` (SIGGRAPH17), recognised by their keys.

No file is ever unpickled: ``torch.load(weights_only=True)`` or safetensors only.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from vidcolor.errors import VidcolorError
from vidcolor.models.base import ColorNet
from vidcolor.models.eccv16 import ECCV16
from vidcolor.models.lite0_unet import Lite0UNet, Lite0UNetConfig
from vidcolor.models.siggraph17 import SIGGRAPH17
from vidcolor.models.vidnet import VidNet, VidNetConfig

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "default.safetensors"
METADATA_KEY = "vidcolor"
BINS_KEY = "bins"

# The architectures ``vidcolor train`` builds: name -> (network class, its configuration class).
TRAINABLE = {
    "vidnet": (VidNet, VidNetConfig),
    "lite0-unet": (Lite0UNet, Lite0UNetConfig),
}


def build_model(architecture: str, config: dict, bins: torch.Tensor | None) -> ColorNet:
    """A fresh trainable network from its architecture name and configuration dict.

    ``bins`` ``(Q, 2)`` is required for a classification model.

    Raises:
        VidcolorError: an unknown architecture.
    """
    if architecture not in TRAINABLE:
        raise VidcolorError(f"unknown architecture {architecture!r}; choose from {', '.join(TRAINABLE)}")
    network_class, config_class = TRAINABLE[architecture]
    model = network_class(config_class.from_dict(config))
    if model.kind == "classification":
        if bins is None or len(bins) != model.config.num_bins:
            raise ValueError(f"a classification {architecture} needs its (num_bins, 2) bins")
        model.set_bins(bins)
    return model


def save_model(model: ColorNet, path: Path, extra: dict | None = None, half: bool = True) -> None:
    """Write a trainable network as safetensors: weights (fp16 by default), bins, and its
    architecture and configuration as metadata."""
    tensors = {
        k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu() for k, v in model.state_dict().items()
    }
    if model.kind == "classification":
        tensors[BINS_KEY] = model.bins.float().cpu().contiguous()
    metadata = {"architecture": model.architecture, "config": model.config.to_dict(), **(extra or {})}
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(metadata)})
    path.chmod(0o644)


def _check_keys(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}")
        if wrong:
            parts.append(
                "wrong shape for "
                + ", ".join(f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in wrong[:3])
            )
        raise VidcolorError(
            f"{source}: weights do not fit the {getattr(model, 'architecture', 'model')} network ({'; '.join(parts)})"
        )


def _load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    _check_keys(model, state, source)
    expected = model.state_dict()
    converted = {k: v.to(expected[k].dtype) for k, v in state.items()}
    model.load_state_dict(converted, strict=False)


def _from_description(architecture: str, config: dict, bins, state: dict, source: Path) -> ColorNet:
    try:
        model = build_model(architecture, config, bins)
    except (ValueError, VidcolorError) as error:
        raise VidcolorError(f"{source}: {error}") from None
    _load_state(model, state, source)
    return model


def _load_safetensors(path: Path) -> ColorNet:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise VidcolorError(f"{path}: not a readable safetensors file ({error})") from None
    if METADATA_KEY not in metadata:
        return _from_state_dict(tensors, path)
    info = json.loads(metadata[METADATA_KEY])
    bins = tensors.pop(BINS_KEY, None)
    return _from_description(str(info.get("architecture")), info.get("config", {}), bins, tensors, path)


def _from_state_dict(state: dict[str, torch.Tensor], path: Path) -> ColorNet:
    if "model_class.0.weight" in state:
        model: ColorNet = SIGGRAPH17()
        _load_state(model, state, path)
        return model
    if "model_out.weight" in state and "model8.6.weight" in state:
        eccv = ECCV16()
        _load_state(eccv, state, path)
        eccv.set_bins(eccv.bins_from_weights())
        return eccv
    raise VidcolorError(
        f"{path}: unrecognised weights (expected a vidcolor model, or Zhang et al.'s eccv16 or siggraph17 file)"
    )


def _load_torch_file(path: Path) -> ColorNet:
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - the restricted unpickler fails on junk in many ways (IndexError, ...)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise VidcolorError(f"{path}: not a loadable weight file ({first_line})") from None
    if not isinstance(data, dict):
        raise VidcolorError(f"{path}: expected a state_dict, found {type(data).__name__}")
    if "model" in data and "config" in data:  # a vidcolor training checkpoint
        config = data["config"]
        architecture = config.get("arch", "vidnet")
        return _from_description(architecture, config["net"], data.get("bins"), data["model"], path)
    if "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    return _from_state_dict(data, path)


def load_model(spec: str | Path | None = None) -> ColorNet:
    """Load a colorization network (in eval mode, on the CPU) from a name or a file.

    Raises:
        VidcolorError: the file is missing, corrupt, or holds weights of no known network.
    """
    if spec is None or str(spec) == "default":
        path = DEFAULT_WEIGHTS
        if not path.exists():
            raise VidcolorError(f"the default model is missing from the package ({path})")
    else:
        path = Path(spec)
        if str(spec) in ("eccv16", "siggraph17"):
            raise VidcolorError(
                f"vidcolor does not ship {spec} weights; pass the released file, e.g. --model "
                + ("colorization_release_v2-9b330a0b.pth" if spec == "eccv16" else "siggraph17-df00044c.pth")
            )
        if not path.exists():
            raise VidcolorError(f"{path}: no such model file")
        if path.is_dir():
            raise VidcolorError(f"{path}: is a folder, not a model file")
    if path.suffix == ".safetensors":
        model = _load_safetensors(path)
    else:
        model = _load_torch_file(path)
    return model.eval()


def model_card(spec: str | Path | None = None) -> dict:
    """The JSON model card beside a safetensors file (``name.json``), or {} when absent."""
    path = DEFAULT_WEIGHTS if spec is None or str(spec) == "default" else Path(spec)
    card = path.with_suffix(".json")
    if card.exists():
        return json.loads(card.read_text())
    return {}
