"""Quantised ab colour bins, soft-encoding, the rebalancing prior and decodings.

The ab plane is cut into square cells of side ``GRID_SPACING`` = 10 centred on multiples
of 10. ``GRID_VALUES`` (-110 .. 110, 23 values) are the cell centres along each axis.

* Joint bins: ``(Q, 2)`` tensors of ab cell centres.
  - :func:`gamut_bins`: the 261 cells that hold at least one 8-bit sRGB colour.
  - :func:`data_bins`: the cells present in a training set (Halim et al.).
  - Zhang et al.'s 313 bins come from the ECCV16 weight file (see ``models.eccv16``).
* Per-channel bins (Melas-Kyriazi & Han): the 23 ``GRID_VALUES`` on each of a and b. They
  line up with the joint grid so a joint distribution marginalises onto them exactly
  (the paper used 25 bins per channel; 23 keeps the grid shared).

Distributions are laid out ``(B, Q, H, W)``; ab images ``(B, 2, H, W)`` in Lab units.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from vidcolor.color import rgb_to_lab

GRID_SPACING = 10.0
GRID_VALUES = np.arange(-110.0, 111.0, GRID_SPACING, dtype=np.float32)
GRID_SIZE = len(GRID_VALUES)  # 23
SOFT_NEIGHBOURS = 5
SOFT_SIGMA = 5.0
PRIOR_SIGMA = 5.0
REBALANCE_LAMBDA = 0.5
ANNEAL_TEMPERATURE = 0.38
DECODINGS = ("mean", "annealed", "mode")


def grid_cells(ab: torch.Tensor) -> torch.Tensor:
    """Grid cell of each ab value.

    Args:
        ab: ``(..., 2)`` ab values in Lab units.
    Returns:
        ``(..., 2)`` long tensor of (a, b) cell indices in [0, 22] (clamped at the edges).
    """
    index = torch.round((ab - float(GRID_VALUES[0])) / GRID_SPACING).long()
    return index.clamp(0, GRID_SIZE - 1)


def cells_to_centres(cells: torch.Tensor) -> torch.Tensor:
    """``(Q, 2)`` cell indices -> ``(Q, 2)`` float32 ab centres."""
    return cells.float() * GRID_SPACING + float(GRID_VALUES[0])


@functools.lru_cache(maxsize=1)
def _gamut_cells() -> torch.Tensor:
    levels = torch.unique(torch.cat((torch.arange(0, 256, 3), torch.tensor([255])))).double() / 255.0
    r, g, b = torch.meshgrid(levels, levels, levels, indexing="ij")
    rgb = torch.stack((r, g, b)).reshape(3, 1, -1)
    ab = rgb_to_lab(rgb)[1:].reshape(2, -1).T
    cells = torch.unique(grid_cells(ab), dim=0)
    return cells


def gamut_bins() -> torch.Tensor:
    """The joint bins that hold at least one 8-bit sRGB colour.

    A cell counts when some sRGB colour (sampled every 3rd level of each 8-bit channel, plus
    255, which finds the same cells as all 16.7 M colours) falls in it. There are 261.

    Returns:
        ``(261, 2)`` float32 ab centres, sorted by (a, b).
    """
    return cells_to_centres(_gamut_cells())


def ab_histogram(ab: torch.Tensor) -> torch.Tensor:
    """Count ab values per grid cell.

    Args:
        ab: ``(B, 2, H, W)`` ab values.
    Returns:
        ``(23, 23)`` float64 counts indexed [a cell, b cell].
    """
    cells = grid_cells(ab.movedim(1, -1).reshape(-1, 2))
    flat = cells[:, 0] * GRID_SIZE + cells[:, 1]
    counts = torch.bincount(flat, minlength=GRID_SIZE * GRID_SIZE)
    return counts.double().reshape(GRID_SIZE, GRID_SIZE).cpu()


def data_bins(histogram: torch.Tensor, min_fraction: float = 1e-6) -> torch.Tensor:
    """Joint bins present in a training set (Halim et al.).

    Args:
        histogram: ``(23, 23)`` counts from :func:`ab_histogram` summed over the data.
        min_fraction: a cell is kept when it holds at least this share of all pixels.
    Returns:
        ``(Q, 2)`` float32 ab centres of the cells kept.
    """
    share = histogram / histogram.sum().clamp_min(1)
    cells = torch.nonzero(share >= min_fraction)
    if len(cells) == 0:
        raise ValueError("the histogram is empty: no colour bins can be derived from it")
    return cells_to_centres(cells)


def empirical_prior(histogram: torch.Tensor, bins: torch.Tensor, sigma: float = PRIOR_SIGMA) -> torch.Tensor:
    """The smoothed empirical distribution p~ of the bins.

    Args:
        histogram: ``(23, 23)`` ab counts over the training set.
        bins: ``(Q, 2)`` ab bin centres (on the grid).
        sigma: Gaussian smoothing over the ab plane, in ab units (5 = half a cell).
    Returns:
        ``(Q,)`` float32 probabilities summing to 1.
    """
    from scipy.ndimage import gaussian_filter  # training only: colorizing never pays for scipy's import

    counts = histogram.double().numpy()
    # zero padding, kernel cut at 3 sigma
    smooth = gaussian_filter(counts, sigma / GRID_SPACING, mode="constant", truncate=3.0) if sigma > 0 else counts
    cells = grid_cells(bins)
    prior = torch.from_numpy(smooth)[cells[:, 0], cells[:, 1]]
    total = prior.sum()
    if total <= 0:
        raise ValueError("no training colour falls in any bin: the prior is empty")
    return (prior / total).float()


def rebalance_weights(prior: torch.Tensor, lam: float = REBALANCE_LAMBDA) -> torch.Tensor:
    """Class-rebalancing weights (Zhang et al. eq. 4).

    w proportional to ((1 - lam) p~ + lam / Q)^-1, normalised so that E_p~[w] = 1.

    Args:
        prior: ``(Q,)`` smoothed empirical bin probabilities.
        lam: mixing weight of the uniform distribution, in [0, 1].
    Returns:
        ``(Q,)`` float32 weights.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda must be in [0, 1], got {lam}")
    q = prior.numel()
    weights = 1.0 / ((1.0 - lam) * prior.double() + lam / q)
    weights = weights / (prior.double() * weights).sum()
    return weights.float()


def soft_encode(
    ab: torch.Tensor, bins: torch.Tensor, neighbours: int = SOFT_NEIGHBOURS, sigma: float = SOFT_SIGMA
) -> torch.Tensor:
    """Spread each ab value over its nearest bins with Gaussian weights.

    Args:
        ab: ``(B, 2, H, W)`` ab values.
        bins: ``(Q, 2)`` ab bin centres.
        neighbours: how many nearest bins share each value (k).
        sigma: Gaussian width in ab units.
    Returns:
        ``(B, Q, H, W)`` target distribution (sums to 1 over Q).
    """
    b, _, h, w = ab.shape
    points = ab.movedim(1, -1).reshape(-1, 2).float()
    centres = bins.to(points.device, torch.float32)
    distance = torch.cdist(points, centres)  # (N, Q)
    k = min(neighbours, centres.shape[0])
    near_d, near_i = distance.topk(k, dim=1, largest=False)
    weight = torch.exp(-(near_d**2) / (2 * sigma**2))
    weight = weight / weight.sum(dim=1, keepdim=True)
    target = torch.zeros_like(distance).scatter_(1, near_i, weight)
    return target.reshape(b, h, w, -1).movedim(-1, 1)


def decode(
    logits: torch.Tensor, bins: torch.Tensor, method: str = "annealed", temperature: float = ANNEAL_TEMPERATURE
) -> torch.Tensor:
    """Turn per-pixel bin scores into ab colours.

    Args:
        logits: ``(B, Q, H, W)`` unnormalised log-probabilities, any memory layout (channels_last,
            the runtimes' native one, is the fastest).
        bins: ``(Q, 2)`` ab bin centres.
        method: ``mean`` (expectation), ``annealed`` (expectation of softmax(log p / T),
            Zhang et al.) or ``mode`` (centre of the most likely bin).
        temperature: T for ``annealed``; T = 1 is the mean, T -> 0 the mode.
    Returns:
        ``(B, 2, H, W)`` ab values in Lab units.
    """
    _check_decoding(method, temperature)
    if method == "mode":
        return decode_probs(bins_last(logits), bins, method).permute(0, 3, 1, 2).contiguous()
    scale = 1.0 / temperature if method == "annealed" else 1.0
    # frame by frame with the bins last: a frame's Q-bin maps stay in cache, and the softmax runs
    # along contiguous memory (about 3x faster than over the outer dimension, measured)
    frames = [expectation(torch.softmax(bins_last(frame[None]) * scale, dim=-1), bins) for frame in logits]
    if not frames:
        return logits.new_zeros((0, 2, *logits.shape[2:]))
    return torch.cat(frames).permute(0, 3, 1, 2).contiguous()


def bins_last(maps: torch.Tensor) -> torch.Tensor:
    """``(B, Q, H, W)`` per-bin maps as a contiguous ``(B, H, W, Q)`` tensor (no copy when the maps
    are channels_last already)."""
    return maps.permute(0, 2, 3, 1).contiguous()


def decode_probs(
    probs: torch.Tensor, bins: torch.Tensor, method: str = "annealed", temperature: float = ANNEAL_TEMPERATURE
) -> torch.Tensor:
    """:func:`decode` for probabilities with the bins last: ``(..., Q)`` (summing to 1 over Q) ->
    ``(..., 2)`` ab in Lab units."""
    _check_decoding(method, temperature)
    centres = bins.to(probs.device, probs.dtype)
    if method == "mode":
        return centres[probs.argmax(dim=-1)]
    if method == "annealed":
        # softmax(log p / T), left unnormalised: the expectation divides by its sum
        weights = probs.clamp_min(1e-12).log_().mul_(1.0 / temperature).exp_()
        return torch.matmul(weights, centres) / weights.sum(dim=-1, keepdim=True)
    return expectation(probs, bins)


def expectation(probs: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """``(..., Q)`` probabilities over ``(Q, 2)`` bins -> ``(..., 2)`` expected ab."""
    return torch.matmul(probs, bins.to(probs.device, probs.dtype))


def _check_decoding(method: str, temperature: float) -> None:
    if method not in DECODINGS:
        raise ValueError(f"unknown decoding {method!r}; choose from {', '.join(DECODINGS)}")
    if method == "annealed" and temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")


def channel_marginals(logits: torch.Tensor, bins: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-channel distributions of the softmax of joint logits: the a and b marginals.

    Args:
        logits: ``(B, Q, H, W)`` scores over the joint ``bins``, contiguous or channels_last.
        bins: ``(Q, 2)`` ab centres on the grid.
        temperature: the joint distribution is read at this temperature first, softmax(logits / T)
            (as the annealed mean reads it; T = 1 is the network's own, T < 1 sharper).
    Returns:
        ``(B, 2, 23, H, W)`` float32 probabilities over ``GRID_VALUES`` of a (index 0) and
        b (index 1); each sums to 1 over its 23 bins.
    """
    cells = grid_cells(bins.to(logits.device))
    if logits.permute(0, 2, 3, 1).is_contiguous():  # channels_last (the runtimes' output): bins last in memory
        # each marginal sums the bins of each grid value: one product with a (Q, 2 x 23) one-hot
        # matrix, which is faster here than transposing to bin-major maps first (measured)
        scores = logits.float().permute(0, 2, 3, 1)
        weights = (scores - scores.amax(dim=-1, keepdim=True)).mul_(1.0 / temperature).exp_()  # not yet normalised
        grid = torch.arange(GRID_SIZE, device=logits.device)
        members = torch.cat([(cells[:, channel, None] == grid) for channel in (0, 1)], dim=1).to(weights.dtype)
        out = torch.matmul(weights, members).unflatten(-1, (2, GRID_SIZE)).permute(0, 3, 4, 1, 2)
    else:  # bin-major: each bin's map is a contiguous slice to add
        scores = logits.float().contiguous()
        weights = (scores - scores.amax(dim=1, keepdim=True)).mul_(1.0 / temperature).exp_()
        out = weights.new_zeros((logits.shape[0], 2, GRID_SIZE, *logits.shape[2:]))
        out[:, 0].index_add_(1, cells[:, 0], weights)
        out[:, 1].index_add_(1, cells[:, 1], weights)
    return (out / out[:, :1].sum(dim=2, keepdim=True)).contiguous()


def joint_marginals(probs: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Per-channel distributions of joint ones: ``(h, w, Q)`` probabilities over ``bins`` ->
    ``(2, 23, h, w)`` float32 over ``GRID_VALUES`` of a (index 0) and b (index 1)."""
    cells = grid_cells(bins.to(probs.device))
    grid = torch.arange(GRID_SIZE, device=probs.device)
    members = torch.cat([(cells[:, channel, None] == grid) for channel in (0, 1)], dim=1).to(torch.float32)
    return torch.matmul(probs.float(), members).unflatten(-1, (2, GRID_SIZE)).permute(2, 3, 0, 1).contiguous()
