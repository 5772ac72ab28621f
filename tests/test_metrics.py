import math

import numpy as np
import pytest

from vidcolor import metrics


def test_psnr_identical_is_infinite_and_known_value(rng):
    image = rng.random((16, 16, 3))
    assert metrics.psnr(image, image) == math.inf
    noisy = image.copy()
    noisy[..., 0] = np.clip(image[..., 0] + 0.1, 0, 1)
    mse = np.mean((noisy - image) ** 2)
    assert metrics.psnr(noisy, image) == pytest.approx(10 * math.log10(1 / mse))
    assert metrics.ssim(image, image) == pytest.approx(1.0)


def test_colourfulness_grey_is_zero_and_uniform_colour_hand_value():
    assert metrics.colourfulness(np.full((8, 8, 3), 0.4)) == pytest.approx(0.0)
    red = np.zeros((8, 8, 3))
    red[..., 0] = 1.0
    # rg = 255, yb = 127.5, no spread: M = 0.3 * sqrt(255^2 + 127.5^2)
    assert metrics.colourfulness(red) == pytest.approx(0.3 * math.hypot(255, 127.5))


def test_auc_exact_is_one_and_constant_error_hand_value():
    ab = np.zeros((4, 4, 2))
    assert metrics.ab_auc(ab, ab) == pytest.approx(1.0)
    off = ab.copy()
    off[..., 0] = 30.0  # every pixel off by 30: within threshold t for t >= 30, i.e. 121 of 151
    assert metrics.ab_auc(off, ab) == pytest.approx(121 / 151)


def test_temporal_ab_error_hand_value():
    truth = np.zeros((3, 2, 2, 2))
    predicted = np.zeros((3, 2, 2, 2))
    predicted[1, ..., 0] = 3.0
    predicted[1, ..., 1] = 4.0  # jumps by 5 then back: |change| = 5 on both steps
    assert metrics.temporal_ab_error(predicted, truth) == pytest.approx(5.0)
    assert metrics.temporal_ab_error(truth, truth) == 0.0
    with pytest.raises(ValueError):
        metrics.temporal_ab_error(truth[:1], truth[:1])
