"""What every colorization network offers the rest of vidcolor."""

from __future__ import annotations

from dataclasses import asdict, fields

import torch
from torch import nn


class NetConfig:
    """Mixin for a frozen dataclass that configures a network: to and from JSON-ready dicts.

    Tuples are stored as lists; keys a dict lacks keep their defaults, unknown keys are ignored.
    """

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict):
        values = {}
        for spec in fields(cls):
            if spec.name in data:
                kind = tuple if isinstance(spec.default, tuple) else type(spec.default)
                values[spec.name] = kind(data[spec.name])
        return cls(**values)


class ColorNet(nn.Module):
    """Base class: a network from normalised lightness to colour.

    Subclasses set ``kind``:

    * ``"classification"``: ``forward`` returns ``(B, Q, h, w)`` logits over the bins in
      the ``bins`` buffer (``(Q, 2)`` ab centres, Lab units);
    * ``"regression"``: ``forward`` returns ``(B, 2, h, w)`` ab in Lab units.

    The input is ``(B, 1, H, W)`` lightness normalised as ``(L - 50) / 100``. ``h, w`` may be a
    fraction of ``H, W`` (``output_stride``); callers upsample the colour.
    """

    kind: str = "classification"
    output_stride: int = 4
    input_multiple: int = 16  # H and W of the input must be multiples of this
    architecture: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("bins", torch.zeros(0, 2), persistent=False)

    def halves(self) -> tuple[nn.Module, nn.Module] | None:
        """The network cut in two, ``(prefix, rest)`` with ``rest(prefix(x)) == self(x)``, for
        mixed precision: the prefix holds the first layers, whose rounding moves the colours most,
        and is run in f32 while the rest runs in bf16 (:mod:`vidcolor.runtime`). None: no cut
        (the whole network runs in one precision)."""
        return None

    def features(self, lightness: torch.Tensor) -> torch.Tensor | None:
        """Descriptors of each 1/8-resolution cell for matching frames against keyframes:
        ``(B, C, H/8, W/8)`` from normalised lightness ``(B, 1, H, W)``; None when the network
        has none to give (then keyframes are carried by the motion alone)."""
        return None

    def frozen_parameters(self) -> list[nn.Parameter]:
        """The parameters that keep their initial values in training (none here)."""
        return []

    def parameter_groups(self, pretrained_lr_scale: float) -> list[dict]:
        """The optimiser's parameter groups, each with its ``lr_scale`` (of the learning rate):
        here every trained parameter at the full rate; a network with a pretrained part gives that
        part ``pretrained_lr_scale``."""
        frozen = {id(p) for p in self.frozen_parameters()}
        return [{"params": [p for p in self.parameters() if id(p) not in frozen], "lr_scale": 1.0}]

    def load_pretrained(self) -> str | None:
        """Initialise the pretrained part (if any) from its published weights; returns what was
        loaded, for the log, or None when the network has no pretrained part.

        Raises:
            VidcolorError: the weights are not installed.
        """
        return None

    def set_bins(self, bins: torch.Tensor) -> None:
        """Store the ``(Q, 2)`` ab bin centres this network's logits refer to."""
        self.bins = bins.detach().float().to(self.bins.device)


class NetPart(nn.Module):
    """One part of a network, as a module of its own (to export it alone): ``forward`` calls the
    network's method ``method`` (e.g. ``forward_prefix``)."""

    def __init__(self, net: ColorNet, method: str) -> None:
        super().__init__()
        self.net = net
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.net, self.method)(x)
