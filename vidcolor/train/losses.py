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


def shift_consistency(
    logits: torch.Tensor,
    shifted_logits: torch.Tensor,
    shift: tuple[int, int],
    stride: int,
    cell_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """How differently a network colours the same content moved by a few pixels (films: colours
    that hold still as the camera moves, instead of flickering with the content's place on the
    network's output grid).

    The shifted view's pixel (y, x) shows the first view's (y + dy, x + dx), so its output cell
    (i, j) is the first view's output at (i + dy / stride, j + dx / stride) in cells, read by
    bilinear interpolation of the probabilities. The divergence is the symmetric Kullback-Leibler
    divergence (Jeffreys, halved) between the two distributions, over the cells both views show
    away from a 2-cell border (where the padding differs).

    Args:
        logits: ``(B, Q, h, w)`` the network's output for the first view.
        shifted_logits: ``(B, Q, h, w)`` its output for the view moved by ``shift``.
        shift: ``(dy, dx)`` in input pixels, each of magnitude below ``(h - 4) * stride``.
        stride: input pixels per output cell.
        cell_weight: optional ``(B, h, w)`` weights in [0, 1] on the first view's cells (read at the
            same places as its probabilities), e.g. :func:`greyness_weight` of the target colours.
    Returns:
        scalar, >= 0 (0 when the outputs agree), mean over the shared cells and the batch of the
        (weighted) divergence.
    """
    _, _, h, w = logits.shape
    dy, dx = shift[0] / stride, shift[1] / stride
    rows = torch.arange(h, device=logits.device, dtype=torch.float32)
    cols = torch.arange(w, device=logits.device, dtype=torch.float32)
    keep_rows = (rows + dy >= 2) & (rows + dy <= h - 3) & (rows >= 2) & (rows <= h - 3)
    keep_cols = (cols + dx >= 2) & (cols + dx <= w - 3) & (cols >= 2) & (cols <= w - 3)
    rows, cols = rows[keep_rows], cols[keep_cols]
    if not len(rows) or not len(cols):
        raise ValueError(f"a shift of {shift} pixels leaves no shared cells in a {h}x{w} output")
    grid_y = (2 * (rows + dy) / (h - 1) - 1)[:, None].expand(-1, len(cols))
    grid_x = (2 * (cols + dx) / (w - 1) - 1)[None, :].expand(len(rows), -1)
    grid = torch.stack([grid_x, grid_y], dim=-1)[None].expand(len(logits), -1, -1, -1)
    probs = torch.softmax(logits.float(), dim=1)
    moved = torch.nn.functional.grid_sample(probs, grid, mode="bilinear", align_corners=True)
    shifted = torch.softmax(shifted_logits.float(), dim=1)[:, :, keep_rows][:, :, :, keep_cols]
    floor = 1e-8
    divergence = 0.5 * ((moved - shifted) * (torch.log(moved + floor) - torch.log(shifted + floor))).sum(dim=1)
    if cell_weight is not None:
        weight = torch.nn.functional.grid_sample(cell_weight[:, None].float(), grid, align_corners=True)
        divergence = divergence * weight[:, 0]
    return divergence.mean()


def greyness_weight(ab: torch.Tensor, free_chroma: float) -> torch.Tensor:
    """Per-pixel weight that is 1 where a colour is grey and falls linearly to 0 at ``free_chroma``.

    With it the shift-consistency term holds near-grey regions (walls, sky, streets: where films
    flicker most visibly) still and leaves coloured ones free to take their colours.

    Args:
        ab: ``(B, 2, h, w)`` target colours in Lab units.
        free_chroma: chroma (ab units, > 0) from which a pixel's weight is 0.
    Returns:
        ``(B, h, w)`` weights in [0, 1].
    """
    if free_chroma <= 0:
        raise ValueError(f"free_chroma must be > 0, got {free_chroma}")
    chroma = torch.linalg.vector_norm(ab.float(), dim=1)
    return (1 - chroma / free_chroma).clamp(0, 1)
