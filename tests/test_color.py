import numpy as np
import pytest
import torch
from skimage import color as skcolor

from vidcolor.color import compose_lab, lab_to_rgb, lightness_to_luma, luma_to_lightness, luma_to_unit, rgb_to_lab
from vidcolor.film.frames import luma_to_lightness_8bit

EDGE_COLOURS = np.array(
    [
        [0, 0, 0],
        [1, 1, 1],
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [1, 1, 0],
        [0, 1, 1],
        [1, 0, 1],
        [0.5, 0.5, 0.5],
        [0.04045, 0.04045, 0.04045],
        [0.04, 0.2, 0.9],
        [1 / 255, 0, 0],
    ]
)


def to_torch(image: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(image).to(dtype).permute(2, 0, 1)


def to_numpy(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).double().numpy()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rgb_to_lab_matches_skimage_on_random_and_edge_colours(rng, dtype):
    rgb = rng.random((32, 32, 3))
    rgb[0, : len(EDGE_COLOURS)] = EDGE_COLOURS
    expected = skcolor.rgb2lab(rgb)
    assert np.abs(to_numpy(rgb_to_lab(to_torch(rgb, dtype))) - expected).max() < 0.05


def test_lab_to_rgb_matches_skimage_to_one_level(rng):
    lab = np.stack(
        [rng.uniform(0, 100, (32, 32)), rng.uniform(-110, 110, (32, 32)), rng.uniform(-110, 110, (32, 32))], -1
    )
    lab[0, :3] = [[0, 0, 0], [100, 0, 0], [50, 0, 0]]
    with pytest.warns(UserWarning):  # skimage warns about the out-of-gamut colours it clips
        expected = skcolor.lab2rgb(lab)
    assert np.abs(to_numpy(lab_to_rgb(to_torch(lab))) - expected).max() < 1 / 255


def test_round_trip_is_identity_in_gamut(rng):
    rgb = torch.from_numpy(rng.random((2, 3, 8, 8)))
    assert torch.allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-6)


def test_batched_layout_and_shape_errors():
    batch = torch.rand(4, 5, 3, 6, 7)
    assert rgb_to_lab(batch).shape == batch.shape
    with pytest.raises(ValueError, match=r"\(\*, 3, H, W\)"):
        rgb_to_lab(torch.rand(2, 4, 4))
    with pytest.raises(TypeError):
        rgb_to_lab(torch.zeros(3, 2, 2, dtype=torch.uint8))


def test_grey_level_lightness_matches_lab_and_inverts(rng):
    grey = rng.random((16, 16))
    expected = skcolor.rgb2lab(np.repeat(grey[..., None], 3, axis=2))[..., 0]
    lightness = luma_to_lightness(torch.from_numpy(grey)[None])
    assert np.abs(lightness[0].numpy() - expected).max() < 1e-6
    assert torch.allclose(lightness_to_luma(lightness), torch.from_numpy(grey)[None], atol=1e-6)


def test_compose_lab_concatenates_channels():
    lab = compose_lab(torch.full((2, 1, 4, 4), 50.0), torch.zeros(2, 2, 4, 4))
    assert lab.shape == (2, 3, 4, 4) and float(lab[:, 0].mean()) == 50.0


@pytest.mark.parametrize("full_range", [False, True])
def test_8bit_luma_look_up_matches_the_transfer_formula(full_range):
    luma = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16).repeat(2, 1, 1)
    looked_up = luma_to_lightness_8bit(luma, full_range)
    assert looked_up.shape == (2, 1, 16, 16) and looked_up.dtype == torch.float32
    torch.testing.assert_close(looked_up, luma_to_lightness(luma_to_unit(luma, full_range)), atol=1e-4, rtol=0)
    assert looked_up[0, 0, 0, 0] == 0 and abs(looked_up[0, 0, -1, -1].item() - 100) < 1e-3
