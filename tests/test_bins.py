import math

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from vidcolor.bins import (
    GRID_VALUES,
    ab_histogram,
    channel_marginals,
    data_bins,
    decode,
    empirical_prior,
    gamut_bins,
    grid_cells,
    rebalance_weights,
    soft_encode,
)


def test_gamut_bins_count_and_cover_every_srgb_colour(rng):
    bins = gamut_bins()
    assert bins.shape == (261, 2)
    assert torch.all(bins % 10 == 0)
    rgb = rng.integers(0, 256, (200_000, 1, 3)) / 255.0
    ab = torch.from_numpy(skcolor.rgb2lab(rgb).reshape(-1, 3)[:, 1:])
    present = {tuple(c) for c in grid_cells(ab).tolist()}
    known = {tuple(c) for c in grid_cells(bins).tolist()}
    assert present <= known
    # pure sRGB red (a=80.1, b=67.2) lands in the (80, 70) cell
    assert (torch.tensor([80.0, 70.0]) == bins).all(dim=1).any()


def test_soft_encode_on_a_bin_centre_matches_hand_computation():
    bins = torch.tensor([[a, b] for a in (-10.0, 0.0, 10.0) for b in (-10.0, 0.0, 10.0)])
    ab = torch.tensor([0.0, 0.0]).view(1, 2, 1, 1)
    target = soft_encode(ab, bins)[0, :, 0, 0]
    centre = 1 / (1 + 4 * math.exp(-2))  # d = 0 and four neighbours at d = 10, sigma = 5
    side = math.exp(-2) / (1 + 4 * math.exp(-2))
    assert target[4].item() == pytest.approx(centre, abs=1e-6)
    assert sorted(target.tolist())[-5:-1] == pytest.approx([side] * 4, abs=1e-6)
    assert target.sum().item() == pytest.approx(1.0)
    assert (target > 0).sum() == 5


def test_rebalance_weights_hand_values():
    weights = rebalance_weights(torch.tensor([0.5, 0.3, 0.2]), lam=0.5)
    raw = 1 / (0.5 * np.array([0.5, 0.3, 0.2]) + 0.5 / 3)
    expected = raw / (np.array([0.5, 0.3, 0.2]) * raw).sum()
    assert weights.numpy() == pytest.approx(expected, rel=1e-6)
    assert float((torch.tensor([0.5, 0.3, 0.2]) * weights).sum()) == pytest.approx(1.0)
    assert rebalance_weights(torch.tensor([0.5, 0.3, 0.2]), lam=1.0).numpy() == pytest.approx([1, 1, 1])
    with pytest.raises(ValueError):
        rebalance_weights(torch.tensor([1.0]), lam=2.0)


def test_prior_counts_and_smoothing():
    ab = torch.zeros(1, 2, 4, 4)
    ab[0, 0, :2] = 20.0  # half the pixels at (20, 0), half at (0, 0)
    histogram = ab_histogram(ab)
    assert histogram.sum() == 16 and histogram[13, 11] == 8 and histogram[11, 11] == 8
    bins = torch.tensor([[0.0, 0.0], [20.0, 0.0], [10.0, 0.0]])
    raw = empirical_prior(histogram, bins, sigma=0)
    assert raw.numpy() == pytest.approx([0.5, 0.5, 0.0])
    smooth = empirical_prior(histogram, bins, sigma=5)
    # sigma 5 = half a cell: the neighbour's share is exp(-2) of the centre's, times two sources
    centre, neighbour = 1.0, 2 * math.exp(-2)
    assert float(smooth[2] / smooth[0]) == pytest.approx(neighbour / (centre + math.exp(-8)), rel=1e-3)
    assert float(smooth.sum()) == pytest.approx(1.0)


def test_data_bins_keeps_present_cells():
    histogram = torch.zeros(23, 23, dtype=torch.float64)
    histogram[11, 11] = 100
    histogram[0, 22] = 1
    assert data_bins(histogram).tolist() == [[-110.0, 110.0], [0.0, 0.0]]
    assert data_bins(histogram, min_fraction=0.05).tolist() == [[0.0, 0.0]]
    with pytest.raises(ValueError):
        data_bins(torch.zeros(23, 23))


def test_decodings_on_hand_values():
    bins = torch.tensor([[0.0, 0.0], [40.0, 0.0], [0.0, -40.0]])
    probs = torch.tensor([0.2, 0.5, 0.3]).view(1, 3, 1, 1)
    logits = probs.log()
    assert decode(logits, bins, "mean")[0, :, 0, 0].tolist() == pytest.approx([20.0, -12.0], abs=1e-4)
    assert decode(logits, bins, "mode")[0, :, 0, 0].tolist() == [40.0, 0.0]
    sharpened = probs**2 / (probs**2).sum()
    annealed = decode(logits, bins, "annealed", temperature=0.5)[0, :, 0, 0]
    assert annealed.tolist() == pytest.approx([40 * sharpened[0, 1].item(), -40 * sharpened[0, 2].item()], abs=1e-4)
    assert torch.allclose(decode(logits, bins, "annealed", temperature=1.0), decode(logits, bins, "mean"))
    with pytest.raises(ValueError):
        decode(logits, bins, "median")


def test_channel_marginals_of_the_softmax():
    bins = torch.tensor([[0.0, 0.0], [40.0, 0.0], [40.0, -40.0]])
    logits = torch.tensor([0.2, 0.5, 0.3]).log().view(1, 3, 1, 1) + 7.0  # softmax: 0.2, 0.5, 0.3
    marginals = channel_marginals(logits, bins)
    assert marginals.shape == (1, 2, len(GRID_VALUES), 1, 1)
    probs_a, probs_b = marginals[0, 0, :, 0, 0], marginals[0, 1, :, 0, 0]
    assert probs_a[11].item() == pytest.approx(0.2) and probs_a[15].item() == pytest.approx(0.8)
    assert probs_b[11].item() == pytest.approx(0.7) and probs_b[7].item() == pytest.approx(0.3)
    assert probs_a.sum().item() == pytest.approx(1.0) and probs_b.sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["mean", "annealed", "mode"])
def test_decoding_and_marginals_are_the_same_in_either_memory_layout(method):
    """Runtimes hand over channels_last logits (bins last in memory), files and tests bin-major ones."""
    bins = gamut_bins()
    logits = torch.randn(2, len(bins), 5, 7, generator=torch.Generator().manual_seed(0)) * 3
    channels_last = logits.contiguous(memory_format=torch.channels_last)
    probs = torch.softmax(logits / (0.6 if method == "annealed" else 1.0), dim=1)
    reference = torch.einsum("bqhw,qc->bchw", probs, bins)
    if method == "mode":
        reference = bins[logits.argmax(1)].movedim(-1, 1)
    for layout in (logits, channels_last):
        ab = decode(layout, bins, method, temperature=0.6)
        assert ab.shape == (2, 2, 5, 7) and ab.is_contiguous()
        assert torch.allclose(ab, reference, atol=1e-3)
    assert torch.allclose(channel_marginals(channels_last, bins), channel_marginals(logits, bins), atol=1e-6)
    first = channel_marginals(logits, bins)[:, 0]  # the a marginal sums the softmax over each a value's bins
    expected = torch.zeros_like(first).index_add_(1, grid_cells(bins)[:, 0], torch.softmax(logits, dim=1))
    assert torch.allclose(first, expected, atol=1e-6)
    # at a temperature, the marginals of softmax(logits / T), in either layout
    cold = torch.zeros_like(first).index_add_(1, grid_cells(bins)[:, 0], torch.softmax(logits / 0.5, dim=1))
    for layout in (logits, channels_last):
        assert torch.allclose(channel_marginals(layout, bins, 0.5)[:, 0], cold, atol=1e-6)
