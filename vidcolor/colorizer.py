"""A network at a fixed input area with its decoding: lightness batches in, ab batches out.

The colorizer holds no state between calls; a film's engine passes its
:class:`~vidcolor.decoding.FilmState` along with each batch. :class:`ColorizerSpec` holds the
command line's choices (and their defaults) and builds one, with the model card's decoding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from vidcolor.bins import ANNEAL_TEMPERATURE
from vidcolor.color import normalize_lightness
from vidcolor.decoding import Decoder, DecodeSettings, FilmState
from vidcolor.errors import VidcolorError
from vidcolor.hints import Hints
from vidcolor.models.base import ColorNet
from vidcolor.models.loading import load_model, model_card
from vidcolor.mrf import MRFSettings
from vidcolor.runtime import Runner, export_key, make_runner, resolve_precision, resolve_runtime

DEFAULT_SIZE = 256
# The matching descriptors are the network's features of its input shrunk by this factor: in
# PyTorch on the CPU the full-size features took 2.5x the whole network's time in OpenVINO.
FEATURE_SHRINK = 2


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu`` / ``cuda`` / ``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VidcolorError("--device cuda was asked for, but no CUDA GPU is available")
    return device


def network_shape(height: int, width: int, size: int, multiple: int) -> tuple[int, int]:
    """The network's input shape for ``height`` x ``width`` frames: about ``size`` squared pixels
    in the frames' aspect ratio.

    Frames keep their proportions (a 16:9 film goes in as 192 x 352 rather than squeezed into
    256 x 256): on the 7 colour clips of ../shared/data/video this took the shipped model from
    1.33 to 1.10 dB below grey, every clip gaining, at the same cost (benchmarks/RESULTS.md).

    Args:
        height, width: frame size in pixels (> 0).
        size: the side of the square of the same area (a multiple of ``multiple``).
        multiple: what each side must be a multiple of (the network's ``input_multiple``).
    Returns:
        ``(h, w)``, each a positive multiple of ``multiple``; ``(size, size)`` for square frames.
    """
    root = math.sqrt(width / height)
    rows, columns = (max(multiple, round(side / multiple) * multiple) for side in (size / root, size * root))
    return rows, columns


class Colorizer:
    """Runs a :class:`ColorNet` at a fixed input area, in each frame's aspect ratio, and decodes its
    output.

    Args:
        model: the network (moved to ``device``, eval mode).
        device: where the network runs.
        size: the side of the square whose area the network's input has, in pixels (a multiple of
            the model's ``input_multiple``); see :func:`network_shape`.
        decode: the decoding of classification outputs.
        runtime: ``torch``, ``openvino``, ``onnxruntime`` or ``auto`` (see :mod:`vidcolor.runtime`);
            the network is exported (and cached, one export per input shape) for the runtimes
            other than torch.
        precision: the network's arithmetic, ``auto``, ``f32``, ``mixed`` or ``bf16``
            (:func:`vidcolor.runtime.resolve_precision`).

    The command line's choices and defaults are :class:`ColorizerSpec`'s.
    """

    def __init__(
        self,
        model: ColorNet,
        device: torch.device | str = "cpu",
        size: int = DEFAULT_SIZE,
        decode: DecodeSettings | None = None,
        *,
        runtime: str,
        precision: str,
    ) -> None:
        multiple = model.input_multiple
        if size < multiple or size % multiple:
            raise VidcolorError(f"--size must be a positive multiple of {multiple} for this model, got {size}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.size = size
        self.decode = decode or DecodeSettings()
        self.decoder = Decoder(self.decode, model.bins, model.kind, self.device)
        self.runtime = resolve_runtime(runtime, self.device)
        halves = model.halves() is not None
        self.precision = resolve_precision(precision, self.runtime, self.device, halves)
        self.notices: list[str] = []  # for the user: e.g. a runtime that could not be used
        # One runner per input shape, built when first needed; the square one now, so that a
        # runtime that cannot run the network is found (and left for PyTorch) at once.
        self._runners: dict[tuple[int, int], Runner] = {}
        try:
            self._runner((size, size))
        except VidcolorError as error:
            if runtime != "auto":
                raise
            self.notices.append(f"{error}; running it in PyTorch instead")
            self.runtime = "torch"
            self.precision = resolve_precision(precision, self.runtime, self.device, halves)
            self._runner((size, size))

    def _runner(self, shape: tuple[int, int]) -> Runner:
        """The network in ``self.runtime`` for ``(B, 1, h, w)`` input, ``shape`` = (h, w)."""
        if self.runtime == "torch":
            shape = (0, 0)  # PyTorch takes every shape: one runner
        if shape not in self._runners:
            self._runners[shape] = make_runner(self.model, self.runtime, self.device, shape, self.precision)
        return self._runners[shape]

    def network_shape(self, height: int, width: int) -> tuple[int, int]:
        """The network's ``(h, w)`` input for frames of ``height`` x ``width`` (:func:`network_shape`)."""
        return network_shape(height, width, self.size, self.model.input_multiple)

    def run_network(self, net_input: torch.Tensor) -> torch.Tensor:
        """The network's output for its normalised input ``(B, 1, h, w)`` (any h, w it accepts)."""
        return self._runner(tuple(net_input.shape[-2:]))(net_input)

    def fingerprint(self) -> str:
        """A hash of everything that decides this colorizer's colours: the network's weights, the
        input area, the runtime (and its version), the device kind, the precision, the decoding."""
        digest = hashlib.sha256(export_key(self.model, self.runtime, (self.size, self.size)).encode())
        digest.update(b"|aspect kept")  # the input's shape follows the frames' (network_shape)
        settings = dataclasses.replace(self.decode, reference=None)
        digest.update(f"|{self.device.type}|{self.precision}|{settings!r}|".encode())
        if self.decode.reference is not None:
            digest.update(np.ascontiguousarray(self.decode.reference, dtype=np.float64).tobytes())
        return digest.hexdigest()

    def network_input(self, lightness: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` L in [0, 100] (any device) -> the network's normalised input
        ``(B, 1, h, w)`` on ``self.device``, ``(h, w) = self.network_shape(H, W)``."""
        lightness = lightness.to(self.device, non_blocking=True).float()
        shape = self.network_shape(*lightness.shape[-2:])
        if lightness.shape[-2:] != shape:
            lightness = functional.interpolate(
                lightness, size=shape, mode="bilinear", antialias=True, align_corners=False
            )
        return normalize_lightness(lightness)

    @torch.inference_mode()
    def logits(self, lightness: torch.Tensor) -> torch.Tensor:
        """Network output for lightness at any resolution.

        Args:
            lightness: ``(B, 1, H, W)`` L in [0, 100] (any device; moved to ``self.device``).
        Returns:
            ``(B, Q, h/4, w/4)`` float32 logits (classification) or ``(B, 2, h', w')`` ab
            (regression), with ``(h, w) = self.network_shape(H, W)``.
        """
        return self.run_network(self.network_input(lightness))

    @torch.inference_mode()
    def features(self, lightness: torch.Tensor) -> torch.Tensor | None:
        """The network's matching descriptors (:meth:`ColorNet.features`) of lightness
        ``(B, 1, H, W)`` in [0, 100], from its input shape shrunk ``FEATURE_SHRINK`` times:
        ``(B, C, h/16, w/16)`` float32 on ``self.device`` (in PyTorch, f32, whatever the
        runtime), or None when it has none."""
        net_input = self.network_input(lightness)
        small = functional.avg_pool2d(net_input, FEATURE_SHRINK)  # a quarter of the network's cost
        features = self.model.features(small)
        return None if features is None else features.float()

    @torch.inference_mode()
    def ab_lowres(
        self,
        lightness: torch.Tensor,
        state: FilmState | None = None,
        times: list[float] | None = None,
        hints: Hints | None = None,
    ) -> torch.Tensor:
        """ab at the network's output resolution.

        Args:
            lightness: ``(B, 1, H, W)`` L in [0, 100]; with ``state``, consecutive frames of a film.
            state: the film's temporal state (advanced), or None to colorize each frame on its own.
            times: the frames' film times in seconds (for the keyframes of ``state.guide``).
            hints: a photo's colour hints (B = 1, no state).
        Returns:
            ``(B, 2, h, w)`` ab in Lab units on ``self.device``.
        """
        guided = state is not None and state.guide is not None
        features = self.features(lightness) if guided else None
        return self.decoder.decode(self.logits(lightness), lightness, state, times, features, hints)

    @torch.inference_mode()
    def decode_output(self, out: torch.Tensor, lightness: torch.Tensor, state: FilmState | None = None) -> torch.Tensor:
        """Decode network output ``(B, Q, h, w)`` of frames with lightness ``(B, 1, H, W)`` in [0, 100]
        into ``(B, 2, h, w)`` ab (see :meth:`Decoder.decode`)."""
        return self.decoder.decode(out, lightness, state)

    @torch.inference_mode()
    def ab(
        self, lightness: torch.Tensor, size: tuple[int, int] | None = None, state: FilmState | None = None
    ) -> torch.Tensor:
        """ab for each frame, upsampled to ``size`` (default: the input's H, W).

        Args:
            lightness: ``(B, 1, H, W)`` L in [0, 100].
            size: output ``(height, width)``.
            state: a film's temporal state, or None (each frame on its own).
        Returns:
            ``(B, 2, height, width)`` ab in Lab units on ``self.device``.
        """
        return upsample_ab(self.ab_lowres(lightness, state), size or tuple(lightness.shape[-2:]))


def upsample_ab(ab: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of ``(B, 2, h, w)`` ab to ``size`` = (height, width)."""
    if tuple(ab.shape[-2:]) == tuple(size):
        return ab
    return functional.interpolate(ab, size=size, mode="bilinear", align_corners=False)


def card_decoding(model: str) -> DecodeSettings:
    """The decoding a model's card recommends, else the annealed mean at ``ANNEAL_TEMPERATURE``."""
    card = model_card(model) if model.endswith(".safetensors") or model == "default" else {}
    chosen = card.get("default_decoding") or {}
    return DecodeSettings(chosen.get("method", "annealed"), float(chosen.get("temperature", ANNEAL_TEMPERATURE)))


@dataclasses.dataclass(frozen=True)
class ColorizerSpec:
    """Everything that decides a colorizer, each default declared here once (the command line's
    options take theirs from these fields); built once by the CLI, used by colorize, eval and
    the Ray workers, which build the same colorizer from it (it is picklable).

    Fields: ``model`` (``"default"`` or a weight file); ``size`` (the network's input side in
    pixels); ``device`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``); ``decode_method``
    (``annealed``, ``mean``, ``mode``, ``mrf``; None: the card's); ``temperature`` (that the
    annealed mean and the MRF's marginals read the network's distribution at; None: the card's
    when its method is chosen or both are among those two, else ``ANNEAL_TEMPERATURE``);
    ``mrf`` (the Potts model's settings); ``temporal`` (link each film frame to the previous
    one); ``reference`` (a colour image whose ab histogram steers the colours); ``runtime``
    (:data:`vidcolor.runtime.RUNTIMES`; ``auto``: the fastest one installed for the device);
    ``precision`` (:data:`vidcolor.runtime.PRECISIONS`).
    """

    model: str = "default"
    size: int = DEFAULT_SIZE
    device: str = "auto"
    decode_method: str | None = None
    temperature: float | None = None
    mrf: MRFSettings = dataclasses.field(default_factory=MRFSettings)
    temporal: bool = True
    reference: Path | None = None
    runtime: str = "auto"
    precision: str = "auto"

    def decoding(self, method: str | None = None) -> DecodeSettings:
        """The decoding settings of ``method`` (None: :attr:`decode_method`, else the card's)."""
        preferred = card_decoding(self.model)
        method = method or self.decode_method or preferred.method
        temperature = self.temperature
        if temperature is None:
            # the card's temperature is the model's: it serves both decodings that read one
            read_at_temperature = {"annealed", "mrf"}
            both = {method, preferred.method} <= read_at_temperature
            temperature = preferred.temperature if method == preferred.method or both else ANNEAL_TEMPERATURE
        return DecodeSettings(method, temperature, mrf=self.mrf, temporal=self.temporal, reference=self._histogram())

    def _histogram(self) -> np.ndarray | None:
        if self.reference is None:
            return None
        from vidcolor.image import reference_histogram  # the image module builds on this one

        return reference_histogram(self.reference)

    def build(self) -> Colorizer:
        """Load the model and wrap it with the chosen decoding.

        Raises:
            VidcolorError: the model or the reference cannot be loaded, the device is missing, or
            the decoding does not apply to the model.
        """
        network = load_model(self.model)
        device = resolve_device(self.device)
        return Colorizer(network, device, self.size, self.decoding(), runtime=self.runtime, precision=self.precision)
