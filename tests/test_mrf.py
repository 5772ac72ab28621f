import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from tests.clips import make_clip
from tests.conftest import run_cli
from tests.mrf_reference import mean_field_reference
from vidcolor import mrf
from vidcolor.bins import GRID_VALUES, channel_marginals
from vidcolor.colorizer import Colorizer
from vidcolor.decoding import Decoder, DecodeSettings, FilmState
from vidcolor.errors import VidcolorError
from vidcolor.models import VidNetConfig, build_model

K = len(GRID_VALUES)


def random_probs(rng, height, width, k=K):
    """``(K, H, W)`` random, mostly peaked distributions."""
    probs = rng.random((k, height, width)) ** 4
    return probs / probs.sum(axis=0, keepdims=True)


def channels_last(array):
    """``(K, H, W)`` -> ``(H, W, K)``, the reference's layout."""
    return np.ascontiguousarray(np.moveaxis(array, 0, -1))


@pytest.mark.parametrize(("height", "width", "band"), [(1, 1, 2), (5, 7, 2), (33, 40, 2), (32, 17, 1), (9, 12, 3)])
def test_numba_mean_field_matches_numpy_reference(rng, height, width, band):
    lightness = rng.random((height, width)) * 0.05
    right, down = mrf.link_weights(lightness, 1e-3)
    right, down = right.astype(np.float64), down.astype(np.float64)
    # two channels at once, each with its unary plus a temporal field
    bias = np.stack([10 * random_probs(rng, height, width) + rng.random((K, height, width)) for _ in range(2)])
    fast = mrf.mean_field(bias, right, down, 8, 10.0, 3.0, band)
    assert fast.shape == bias.shape
    for channel in range(2):
        slow = mean_field_reference(channels_last(bias[channel]), right, down, 8, 10.0, 3.0, band)
        assert np.abs(channels_last(fast[channel]) - slow).max() < 1e-5
    assert np.allclose(fast.sum(axis=1), 1.0)


def test_mean_field_calls_of_one_shape_reuse_buffers_without_leaking_state(rng):
    # an odd width leaves a padding slot in every other row, which a reused buffer must reset
    height, width = 9, 13
    right, down = (weights.astype(np.float64) for weights in mrf.link_weights(rng.random((height, width)) * 0.05, 1e-3))
    first_bias = 10 * random_probs(rng, height, width)[None]
    first = mrf.mean_field(first_bias, right, down, 8, 10.0, 3.0, 2)
    kept = first.copy()
    second_bias = 10 * random_probs(rng, height, width)[None]
    second = mrf.mean_field(second_bias, right, down, 8, 10.0, 3.0, 2)
    third = mrf.mean_field(10 * random_probs(rng, 4, 5)[None], right[:4, :5], down[:4, :5], 8, 10.0, 3.0, 2)
    again = mrf.mean_field(first_bias, right, down, 8, 10.0, 3.0, 2)
    assert np.array_equal(first, kept)  # later calls do not write into an earlier result
    assert third.shape == (1, K, 4, 5)
    assert np.array_equal(again, first)
    slow = mean_field_reference(channels_last(second_bias[0]), right, down, 8, 10.0, 3.0, 2)
    assert np.abs(channels_last(second[0]) - slow).max() < 1e-5


def test_exp_polynomial_is_accurate_on_its_range():
    x = np.linspace(-36, 0, 10001)
    approximate = np.array([mrf._exp_nonpositive(value) for value in x])
    assert np.abs(approximate / np.exp(x) - 1).max() < 2e-9
    assert mrf._exp_nonpositive(-1000.0) == pytest.approx(np.exp(-36.0))  # clamped, never negative


def test_link_weights_and_unary_hand_values():
    lightness = np.array([[0.50, 0.51], [0.50, 0.50]])
    right, down = mrf.link_weights(lightness, 1e-4)
    assert right[0, 0] == pytest.approx(math.exp(-1), rel=1e-5)  # a step of 0.01 = 1 L unit
    assert right[1, 0] == pytest.approx(1.0) and down[0, 0] == pytest.approx(1.0)
    assert right[:, 1].tolist() == [0, 0] and down[1].tolist() == [0, 0]
    probs = np.array([[[0.25, 0.75]]])
    assert mrf.unary_term(probs, mrf.POTTS_CLASSIC).tolist() == [[[2.5, 7.5]]]
    assert mrf.unary_term(probs, mrf.POTTS_CLASSIC).dtype == np.float64
    assert mrf.unary_term(probs, replace(mrf.POTTS_CLASSIC, unary="sqrt")).ravel().tolist() == pytest.approx(
        [5.0, 10 * 0.75**0.5]
    )
    assert mrf.unary_term(probs, replace(mrf.POTTS_CLASSIC, unary="log")).ravel().tolist() == pytest.approx(
        [10 * math.log(0.25), 10 * math.log(0.75)]
    )
    with pytest.raises(ValueError):
        mrf.unary_term(probs, mrf.MRFSettings(unary="cube"))


def two_label_probs(height, width, label_left, label_right, noise, rng):
    """``(1, K, H, W)``: one label on the left half, another on the right, some pixels noisy."""
    probs = np.full((height, width, K), 0.01)
    probs[:, : width // 2, label_left] = 1.0
    probs[:, width // 2 :, label_right] = 1.0
    flips = rng.random((height, width)) < noise
    probs[flips] = np.roll(probs[flips], 8, axis=-1)  # noisy pixels prefer a far bin
    return np.moveaxis(probs / probs.sum(axis=-1, keepdims=True), -1, 0)[None]


def test_smoothing_follows_lightness_edges(rng):
    probs = two_label_probs(16, 16, 4, 16, noise=0.15, rng=rng)
    lightness = np.zeros((16, 16))
    lightness[:, 8:] = 0.6  # an edge where the labels change
    q = mrf.refine(probs, lightness, mrf.POTTS_CLASSIC)[0]
    labels = q.argmax(axis=0)
    assert (labels[:, :8] == 4).all() and (labels[:, 8:] == 16).all()  # noise removed, edge kept
    assert q.max(axis=0).min() > 0.9  # nearly one-hot
    independent = mrf.refine(probs, lightness, replace(mrf.POTTS_CLASSIC, same=0, near=0))
    assert (independent.argmax(axis=1) == probs.argmax(axis=1)).all()  # no pairwise: mode of p


def test_histogram_transfer_pushes_an_ambiguous_region_toward_the_reference():
    ambiguous = np.zeros((K, 8, 8))
    red, green = 15, 9  # a = +40 (red) or a = -20 (green), equally likely
    ambiguous[red] = ambiguous[green] = 0.5
    histogram = np.zeros(K)
    histogram[red] = 1.0
    shifted = mrf.histogram_transfer(ambiguous, histogram)
    assert (shifted[red] > 0.9).all()
    q = mrf.refine(shifted[None], np.zeros((8, 8)), mrf.POTTS_CLASSIC)
    assert (mrf.mode_values(q) == GRID_VALUES[red]).all()


def test_fused_past_keeps_an_ambiguous_frame_on_the_previous_colour():
    from vidcolor.decoding import fuse_log

    first = np.full((2, K, 6, 6), 0.001)
    first[:, 4] = 1.0
    ambiguous = np.full((2, K, 6, 6), 0.001)
    ambiguous[:, 4] = ambiguous[:, 18] = 0.5
    ambiguous[:, 18] += 0.02  # slightly prefers the other colour on its own
    lightness = np.full((6, 6), 0.5)
    fused = fuse_log(ambiguous, first / first.sum(axis=1, keepdims=True), np.full((6, 6), 0.5))
    with_time = mrf.mode_values(mrf.refine(fused, lightness, mrf.POTTS_CLASSIC))
    alone = mrf.mode_values(mrf.refine(ambiguous, lightness, mrf.POTTS_CLASSIC))
    assert (with_time == GRID_VALUES[4]).all() and (alone == GRID_VALUES[18]).all()


def tiny_colorizer(method, temporal=True, reference=None, scene_cut=mrf.SCENE_CUT):
    torch.manual_seed(0)
    bins = torch.tensor([[a, b] for a in (-40.0, 0.0, 40.0) for b in (-40.0, 0.0, 40.0)])
    model = build_model("vidnet", VidNetConfig(widths=(8, 8, 8, 8), num_bins=9).to_dict(), bins).eval()
    settings = DecodeSettings(
        method, temporal=temporal, reference=reference, mrf=replace(mrf.POTTS_CLASSIC, scene_cut=scene_cut)
    )
    return Colorizer(model, "cpu", 64, settings, runtime="torch", precision="f32")


def test_colorizer_mrf_decoding_and_reference_histogram():
    lightness = torch.rand(2, 1, 64, 64) * 100
    ab = tiny_colorizer("mrf").ab_lowres(lightness)
    assert ab.shape == (2, 2, 16, 16)
    assert set(ab.unique().tolist()) <= set(GRID_VALUES.tolist())
    reddish = np.zeros((23, 23))
    reddish[15, 11] = 1.0  # a = +40, b = 0
    pushed = tiny_colorizer("mean", temporal=False, reference=reddish).ab_lowres(lightness)
    plain = tiny_colorizer("mean", temporal=False).ab_lowres(lightness)
    assert pushed[:, 0].mean() > plain[:, 0].mean() + 5


def test_mrf_reference_weights_the_channel_marginals_once():
    lightness = torch.rand(1, 1, 64, 64) * 100
    reddish = np.zeros((23, 23))
    reddish[15, 11] = 1.0  # a = +40, b = 0
    colorizer = tiny_colorizer("mrf", temporal=False, reference=reddish)
    logits = colorizer.logits(lightness)
    probs = channel_marginals(logits, colorizer.model.bins, colorizer.decode.temperature)[0].numpy()
    small = torch.nn.functional.interpolate(lightness, size=logits.shape[-2:], mode="area")[0, 0].numpy() / 100
    channels = (reddish.sum(axis=1), reddish.sum(axis=0))
    weighted = np.stack([mrf.histogram_transfer(p, h) for p, h in zip(probs, channels, strict=True)])
    expected = mrf.mode_values(mrf.refine(weighted, small, mrf.POTTS_CLASSIC))
    assert np.array_equal(colorizer.ab_lowres(lightness)[0].numpy(), expected)


def test_cheap_temporal_blend_for_mean_decoding_and_a_fresh_film_state():
    colorizer = tiny_colorizer("mean", temporal=True)
    frames = torch.rand(3, 1, 64, 64) * 10 + 50
    blended = colorizer.ab_lowres(frames, FilmState())
    independent = colorizer.ab_lowres(frames)  # no state: each frame on its own
    assert torch.allclose(blended[0], independent[0], atol=1e-4)  # the first frame has no past
    assert not torch.allclose(blended[2], independent[2], atol=1e-4)
    assert torch.allclose(colorizer.ab_lowres(frames[2:], FilmState()), independent[2:], atol=1e-4)


def test_cli_mrf_options_on_photo_and_film(tmp_path):
    photo = tmp_path / "p.png"
    Image.fromarray((np.random.default_rng(0).random((48, 64)) * 255).astype(np.uint8)).save(photo)
    red = tmp_path / "red.png"
    Image.fromarray(np.tile(np.array([200, 30, 30], np.uint8), (16, 16, 1))).save(red)
    result = run_cli(
        str(photo),
        "-o",
        str(tmp_path / "o.png"),
        "--decode",
        "mrf",
        "--mrf-iters",
        "3",
        "--mrf-unary",
        "sqrt",
        "--mrf-sigma",
        "1e-3",
        "--reference",
        str(red),
    )
    assert result.returncode == 0, result.stderr
    film = tmp_path / "f.mp4"
    make_clip(film, frames=12)
    for extra in ([], ["--no-temporal"]):
        result = run_cli(str(film), "-o", str(tmp_path / f"f{len(extra)}.mp4"), "--decode", "mrf", *extra)
        assert result.returncode == 0, result.stderr
    assert run_cli(str(photo), "--decode", "mrf", "--mrf-sigma", "0").returncode == 2


@pytest.mark.parametrize("method", ["mean", "mrf"])
def test_scene_cuts_reset_the_link_and_are_counted_in_the_film_state(method):
    colorizer = tiny_colorizer(method, temporal=True)
    state = FilmState()
    steady = torch.rand(3, 1, 64, 64) * 5 + 30
    colorizer.ab_lowres(steady, state)
    assert state.cuts == 0
    bright = torch.rand(1, 1, 64, 64) * 5 + 90  # a jump of 60 L units: a new scene
    after_cut = colorizer.ab_lowres(bright, state)
    assert state.cuts == 1
    assert torch.allclose(after_cut, colorizer.ab_lowres(bright), atol=1e-5)  # as if the film started there


def test_the_blend_and_the_mrf_share_one_scene_cut_threshold():
    frames = torch.cat([torch.full((1, 1, 64, 64), 30.0), torch.full((1, 1, 64, 64), 50.0)])  # a change of 0.2
    for method in ("mean", "mrf"):
        strict, lenient = FilmState(), FilmState()
        tiny_colorizer(method, scene_cut=0.1).ab_lowres(frames, strict)
        tiny_colorizer(method, scene_cut=0.3).ab_lowres(frames, lenient)
        assert (strict.cuts, lenient.cuts) == (1, 0), method


def test_posterior_read_out_by_mode_or_mean():
    from vidcolor.bins import GRID_VALUES
    from vidcolor.mrf import readout

    q = np.zeros((2, len(GRID_VALUES), 1, 2))
    q[0, 5, 0, 0] = q[1, 7, 0, 0] = 1.0  # one-hot: mode and mean agree
    q[0, 10, 0, 1] = q[0, 12, 0, 1] = 0.5  # spread over two bins: the mean lies between them
    q[1, 3, 0, 1] = 2.0  # unnormalised
    mode, mean = readout(q, "mode"), readout(q, "mean")
    assert mode[0, 0, 0] == mean[0, 0, 0] == GRID_VALUES[5] and mean[1, 0, 0] == GRID_VALUES[7]
    assert mode[0, 0, 1] in (GRID_VALUES[10], GRID_VALUES[12]) and mean[0, 0, 1] == GRID_VALUES[11]
    assert mean[1, 0, 1] == GRID_VALUES[3]


def test_log_unary_without_pairwise_terms_returns_the_networks_distribution():
    from vidcolor.bins import GRID_VALUES
    from vidcolor.mrf import MRFSettings, readout, refine

    rng = np.random.default_rng(3)
    probs = rng.random((2, len(GRID_VALUES), 6, 7)) + 0.01
    probs /= probs.sum(axis=1, keepdims=True)
    lightness = rng.random((6, 7)).astype(np.float32)
    settings = MRFSettings(unary="log", unary_weight=1.0, same=0.0, near=0.0, readout="mean")
    q = refine(probs, lightness, settings)
    q = q / q.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(q, probs, rtol=1e-6, atol=1e-9)
    expected = np.tensordot(GRID_VALUES, probs, axes=([0], [1]))
    np.testing.assert_allclose(readout(q, "mean"), expected, rtol=1e-5, atol=1e-4)


def test_log_fusion_is_a_weighted_geometric_mean_that_never_sharpens_a_still_shot():
    from vidcolor.bins import GRID_VALUES
    from vidcolor.decoding import fuse_log

    rng = np.random.default_rng(4)
    k = len(GRID_VALUES)
    probs, previous = (rng.random((2, k, 5, 6)) + 0.01 for _ in range(2))
    probs /= probs.sum(axis=1, keepdims=True)
    previous /= previous.sum(axis=1, keepdims=True)
    confidence = rng.random((5, 6))
    fused = fuse_log(probs, previous, 0.5 * confidence)
    w = 0.5 * confidence
    expected = probs ** (1 - w) * previous**w  # exponents sum to 1
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(fused, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fuse_log(probs, probs, np.ones((5, 6))), probs, rtol=1e-6, atol=1e-9)  # no build-up


def test_the_mrf_reads_the_networks_distribution_at_the_decoding_temperature():
    """A cold temperature sharpens the joint before its marginals: cells split between a neutral
    bin (40 %) and three warm ones (20 % each) come out warm at T = 1 (b about 17) and near neutral
    at T = 0.5, as the annealed mean reads them."""
    bins = torch.tensor([[0.0, 0.0], [10.0, 20.0], [20.0, 20.0], [20.0, 30.0]])
    logits = torch.tensor([0.4, 0.2, 0.2, 0.2]).log().view(1, 4, 1, 1).expand(1, 4, 8, 8).contiguous()
    lightness = torch.full((1, 1, 32, 32), 80.0)
    b_values = {}
    for temperature in (1.0, 0.5):
        settings = DecodeSettings("mrf", temperature, temporal=False)
        b_values[temperature] = Decoder(settings, bins, "classification", torch.device("cpu")).decode(
            logits, lightness
        )[0, 1]
    assert b_values[1.0].mean() > 10 and b_values[0.5].mean() < 5
    with pytest.raises(VidcolorError, match="temperature must be positive"):
        Decoder(DecodeSettings("mrf", 0.0), bins, "classification", torch.device("cpu"))
