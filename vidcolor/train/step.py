"""One optimisation step of ``vidcolor train``: a batch of crops in, the weights updated, the loss out.

Kept apart from the loop (checkpoints, validation, schedules) so that ``benchmarks/bench_train.py``
times exactly what training runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vidcolor.color import normalize_lightness, rgb_to_lab
from vidcolor.models import ColorNet
from vidcolor.train.data import degrade_lightness, fade_chroma, film_grain, random_crops, shifted_crops
from vidcolor.train.losses import (
    ab_mse,
    distillation_loss,
    greyness_weight,
    rebalanced_cross_entropy,
    shift_consistency,
)

CONSISTENCY_SHIFT = 8  # the largest shift of the consistency term's second view, in pixels (2 output cells)
CONSISTENCY_GRAIN = 1.5  # the largest standard deviation of the grain on the second view, in L units


@dataclass
class StepParts:
    """What a step updates and scores: the network, its optimiser and weight average, and the loss's bins."""

    model: ColorNet
    optimizer: torch.optim.Optimizer
    averaged: torch.optim.swa_utils.AveragedModel | None
    bins: torch.Tensor | None  # (Q, 2) ab bin centres (classification), None for regression
    weights: torch.Tensor | None  # (Q,) rebalancing weights (classification)
    degrade: bool = False
    channels_last: bool = True
    teacher: ColorNet | None = None  # eval mode, frozen: the loss is the divergence from its distribution
    low_colour: float = 0.0  # share of each batch whose target colours are faded (fade_chroma)
    precision: str = "f32"  # "bf16": the forward pass under bf16 autocast (CUDA always autocasts to bf16)
    consistency: float = 0.0  # weight of the shift-consistency term (classification without a teacher)
    consistency_free: float = 0.0  # > 0: the term holds only near-grey targets (losses.greyness_weight)


def training_step(
    parts: StepParts, images: torch.Tensor, crop: int, learning_rate: float, generator: torch.Generator
) -> torch.Tensor:
    """Train on random crops of ``images``; returns the batch's loss (a detached scalar).

    With ``parts.consistency`` (classification, no teacher) each crop is also seen moved by up to
    ``CONSISTENCY_SHIFT`` pixels with fresh grain, and ``consistency`` x the divergence of the two
    colourings (:func:`~vidcolor.train.losses.shift_consistency`) joins the loss; with
    ``parts.consistency_free`` the divergence counts only where the target colours are near grey.

    Args:
        images: ``(B, 3, S, S)`` uint8 RGB on the model's device, S >= ``crop``.
        crop: crop side in pixels (a multiple of the network's input multiple).
        learning_rate: the new parts' rate; each parameter group scales it by its ``lr_scale``.
    """
    model = parts.model
    consistent = parts.consistency > 0 and parts.bins is not None and parts.teacher is None
    second_lightness, shift = None, (0, 0)
    if consistent:
        first, second, shift = shifted_crops(images, crop, CONSISTENCY_SHIFT, generator)
        lab = rgb_to_lab(first)
        second_lightness = rgb_to_lab(second)[:, :1]
        grain = film_grain(second_lightness, 0.0, CONSISTENCY_GRAIN, generator)
        second_lightness = (second_lightness + grain).clamp(0, 100)
        if parts.degrade:
            second_lightness = degrade_lightness(second_lightness, generator)
    else:
        lab = rgb_to_lab(random_crops(images, crop, generator))
    lightness = lab[:, :1]
    if parts.degrade:
        lightness = degrade_lightness(lightness, generator)
    target_ab = torch.nn.functional.avg_pool2d(lab[:, 1:], model.output_stride)
    if parts.low_colour > 0:
        target_ab = fade_chroma(target_ab, parts.low_colour, generator=generator)
    for group in parts.optimizer.param_groups:
        group["lr"] = learning_rate * group.get("lr_scale", 1.0)
    net_input = normalize_lightness(lightness)
    if second_lightness is not None:  # both views in one pass
        net_input = torch.cat([net_input, normalize_lightness(second_lightness)])
    if parts.channels_last:
        net_input = net_input.contiguous(memory_format=torch.channels_last)
    on_cuda = images.device.type == "cuda"
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=on_cuda or parts.precision == "bf16"):
        out_map = model(net_input)
    out_map = out_map.float()
    second_map = None
    if second_lightness is not None:
        out_map, second_map = out_map.chunk(2)
    if parts.teacher is not None:
        with torch.no_grad():
            teacher_map = parts.teacher(net_input).float()
        loss = distillation_loss(out_map, teacher_map)
    elif parts.bins is not None:
        loss = rebalanced_cross_entropy(out_map, target_ab, parts.bins.to(images.device), parts.weights)
        if second_map is not None:
            cell_weight = greyness_weight(target_ab, parts.consistency_free) if parts.consistency_free > 0 else None
            divergence = shift_consistency(out_map, second_map, shift, model.output_stride, cell_weight)
            loss = loss + parts.consistency * divergence
    else:
        loss = ab_mse(out_map, target_ab)
    parts.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parts.optimizer.step()
    if parts.averaged is not None:
        parts.averaged.update_parameters(model)
    return loss.detach()
