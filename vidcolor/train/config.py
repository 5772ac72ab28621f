"""The settings of a training run (``vidcolor train``'s options and their defaults)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved in checkpoints and the model card)."""

    data: list[str]  # FOLDER or FOLDER=WEIGHT (sampling share)
    out: str = "runs/train"
    val: str | None = None
    arch: str = "lite0-unet"
    loss: str = "classification"  # or "regression"
    bins: str = "gamut"  # or "data"
    size: int = 128  # crop side during training (the last one, with a schedule)
    size_schedule: list[int] = field(default_factory=list)  # crop sides over equal parts of the run; empty: size
    epochs: int | None = None
    steps: int | None = None
    max_minutes: float | None = None
    batch_size: int = 32
    lr: float = 1e-3  # the decoder's (everything trained from scratch)
    encoder_lr: float | None = None  # the pretrained encoder's; None: lr / 5
    ema: float = 0.999  # decay of the exponential moving average of the weights (0: none)
    hold_out: float = 0.0  # fraction of each training folder kept out (by file-name hash)
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    rebalance_lambda: float = 0.5
    degrade: bool = False
    low_colour: float = 0.0  # share of each batch trained as a faded, low-colour scene
    consistency: float = 0.0  # weight of the shift-consistency term (losses.shift_consistency)
    consistency_free: float = 0.0  # > 0: the consistency term holds near-grey targets only (losses.greyness_weight)
    workers: int = 2
    checkpoint_every: int = 500
    val_every: int | None = None  # steps between validations; None: every epoch
    val_limit: int | None = None
    val_held_out: bool = False  # validate on the training folders' held-out files too (with hold_out)
    val_size: int = 256
    device: str = "auto"
    init: str | None = None  # start from these weights (an exported .safetensors), fresh optimiser
    teacher: str | None = None  # learn this classification model's distributions instead of the labels
    seed: int = 0
    net: dict = field(default_factory=dict)  # the architecture's configuration (its defaults when empty)
    command: str = ""

    @property
    def cache_size(self) -> int:
        """Side of the square images held in memory (crops are cut from them)."""
        return int(math.ceil(max([self.size, *self.size_schedule]) * 1.25 / 16) * 16)

    def crop_size(self, progress: float) -> int:
        """The crop side at ``progress`` in [0, 1] of the run: the schedule's entries take equal parts of it."""
        if not self.size_schedule:
            return self.size
        index = min(len(self.size_schedule) - 1, int(max(0.0, progress) * len(self.size_schedule)))
        return self.size_schedule[index]
