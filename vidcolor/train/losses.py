"""Training losses for colorization."""

from __future__ import annotations

import torch

from vidcolor.bins import soft_encode
from vidcolor.color import AB_NORM


def rebalanced_cross_entropy(
    logits: torch.Tensor, ab: torch.Tensor, bins: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Soft-encoded, class-rebalanced multinomial cross-entropy (Zhang et al.; Halim et al. eq. 3).

    L = -(1 / HW) sum_hw v(Z_hw) sum_q Z_hwq log softmax(logits)_hwq, with Z the soft-encoded
    ground truth (5 nearest bins, sigma 5) and v(Z_hw) = weights[argmax_q Z_hwq].

    Args:
        logits: ``(B, Q, h, w)`` network output.
        ab: ``(B, 2, h, w)`` ground-truth ab at the logits' resolution.
        bins: ``(Q, 2)`` ab bin centres.
        weights: ``(Q,)`` rebalancing weights.
    Returns:
        scalar loss (mean over pixels and batch).
    """
    target = soft_encode(ab, bins)
    pixel_weight = weights.to(logits.device)[target.argmax(dim=1)]  # (B, h, w)
    log_probs = torch.log_softmax(logits.float(), dim=1)
    cross_entropy = -(target * log_probs).sum(dim=1)
    return (pixel_weight * cross_entropy).mean()


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Kullback-Leibler divergence from a teacher network's colour distribution to the student's.

    L = (1 / HW) sum_hw sum_q p_hwq (log p_hwq - log softmax(logits)_hwq), p = softmax(teacher_logits):
    the student learns to give the teacher's distribution over the ab bins at every pixel (zero when
    it does), so it inherits the teacher's colours, which its decoding then reads as the teacher's would.

    Args:
        logits: ``(B, Q, h, w)`` the student's output.
        teacher_logits: ``(B, Q, h, w)`` the teacher's output for the same input, over the same bins.
    Returns:
        scalar loss (mean over pixels and batch), >= 0.
    """
    teacher_log_probs = torch.log_softmax(teacher_logits.float(), dim=1)
    log_probs = torch.log_softmax(logits.float(), dim=1)
    return (teacher_log_probs.exp() * (teacher_log_probs - log_probs)).sum(dim=1).mean()


def ab_mse(predicted_ab: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Mean squared error on ab, in (ab / AB_NORM)^2 units so that it is O(1).

    Args:
        predicted_ab, ab: ``(B, 2, h, w)`` in Lab units.
    """
    return torch.mean(((predicted_ab.float() - ab) / AB_NORM) ** 2)
