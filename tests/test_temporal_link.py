"""The motion-compensated temporal link: flow, warp, confidence, no colour creep, colours that follow."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import ROOT
from vidcolor import decoding, motion
from vidcolor.colorizer import ColorizerSpec
from vidcolor.decoding import FilmState
from vidcolor.image import read_image


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A uint8 plane with texture at several scales (something optical flow can lock on to)."""
    rng = np.random.default_rng(seed)
    plane = sum(
        cv2.resize(rng.random((height // s + 1, width // s + 1)).astype(np.float32), (width, height)) * s
        for s in (4, 8, 16)
    )
    plane = (plane - plane.min()) / (plane.max() - plane.min())
    return (plane * 200 + 25).astype(np.uint8)


def test_flow_recovers_a_shift_and_the_warp_moves_maps_along_it():
    previous = textured(96, 160)
    current = np.roll(previous, (2, 5), axis=(0, 1))  # content moved down 2, right 5
    flow = motion.dense_flow(previous, current)
    inner = flow[16:-16, 16:-16]
    assert np.abs(inner[..., 0] + 5).mean() < 0.5 and np.abs(inner[..., 1] + 2).mean() < 0.5
    x, y, confidence = motion.motion_prior(previous, current, (24, 40))
    assert x.shape == y.shape == confidence.shape == (24, 40)
    assert confidence[4:-4, 4:-4].mean() > 0.8
    assert (confidence[:, 0] < 0.05).all()  # the left column came from outside the previous frame
    maps = torch.zeros(24, 40, 3)
    maps[8:12, 10:14, 0] = 1.0  # a square in channel 0
    maps[..., 1] = 1.0 - maps[..., 0]
    moved = motion.warp_maps(maps, x, y)
    assert torch.allclose(moved.sum(-1), torch.ones(24, 40), atol=1e-5)  # distributions stay distributions
    centre = (moved[..., 0] * torch.arange(40.0)).sum() / moved[..., 0].sum()
    assert abs(float(centre) - (11.5 + 5 / 4)) < 0.3  # moved right by 5 / 4 cells


def test_a_flow_does_not_depend_on_the_flows_computed_before_it():
    previous = textured(144, 192, seed=4)
    current = np.roll(previous, 3, axis=1)
    first = motion.dense_flow(previous, current)
    small = textured(16, 16, seed=5)
    motion.dense_flow(small, np.roll(small, 1, axis=0))  # another size on the same thread
    assert np.array_equal(motion.dense_flow(previous, current), first)


def test_confidence_is_low_where_the_warped_luma_does_not_match():
    previous = textured(96, 160, seed=1)
    current = previous.copy()
    current[32:64, 64:96] = textured(32, 32, seed=2)  # new content appears in a block
    _, _, confidence = motion.motion_prior(previous, current, (24, 40))
    assert confidence[9:15, 17:23].mean() < 0.3
    assert confidence[:6, :10].mean() > 0.9


@pytest.fixture(scope="module")
def default_colorizer():
    return ColorizerSpec("default", 192, "cpu", None, None, runtime="torch", precision="f32").build()


@pytest.fixture(scope="module")
def photo_lightness() -> torch.Tensor:
    """``(1, 1, 144, 192)`` L in [0, 100] of a bundled photo."""
    rgb = read_image(ROOT / "examples" / "coffee_bw.jpg").rgb
    rgb = cv2.resize(rgb, (192, 144), interpolation=cv2.INTER_AREA)
    from vidcolor.color import rgb_to_lab

    return rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None].double()).float()[:, :1]


@pytest.mark.parametrize("method", ["annealed", "mrf"])
def test_a_still_shot_keeps_its_first_frames_colours_for_200_frames(default_colorizer, photo_lightness, method):
    colorizer = default_colorizer
    colorizer.decoder = decoding.Decoder(
        replace(colorizer.decode, method=method), colorizer.model.bins, colorizer.model.kind, colorizer.device
    )
    generator = torch.Generator().manual_seed(0)
    logits = colorizer.logits(photo_lightness)
    state = FilmState()
    first = last = None
    for _ in range(25):  # 200 frames, 8 at a time, each with its own film grain
        grain = torch.randn(8, 1, *photo_lightness.shape[-2:], generator=generator)
        frames = (photo_lightness + grain).clamp(0, 100)
        ab = colorizer.decode_output(logits.expand(8, -1, -1, -1), frames, state)
        first = ab[0] if first is None else first
        last = ab[-1]
    assert state.cuts == 0
    change = (last - first).abs()
    spread = (method, float(change.mean()), float(change.flatten().quantile(0.99)), float(change.amax()))
    assert change.mean() < 1.0, spread
    assert change.amax() < 4.0, spread


def moving_square_film(lightness: torch.Tensor, frames: int, step: int) -> tuple[torch.Tensor, list[int]]:
    """A photo's patch sliding right by ``step`` pixels a frame over a static textured background."""
    background = torch.from_numpy(textured(144, 192, seed=3)).float()[None, None] * (100 / 255)
    patch = lightness[:, :, 40:104, 8:72]
    film, lefts = [], []
    for t in range(frames):
        left = 8 + step * t
        frame = background.clone()
        frame[:, :, 40:104, left : left + 64] = patch
        film.append(frame)
        lefts.append(left)
    return torch.cat(film), lefts


def test_a_moving_objects_colour_follows_it(default_colorizer, photo_lightness, monkeypatch):
    colorizer = default_colorizer
    colorizer.decoder = decoding.Decoder(
        replace(colorizer.decode, method="annealed", blend=0.85),
        colorizer.model.bins,
        colorizer.model.kind,
        colorizer.device,
    )
    film, lefts = moving_square_film(photo_lightness, 12, 4)
    own = colorizer.ab_lowres(film)  # each frame on its own

    def error_inside_the_patch(ab: torch.Tensor) -> float:
        cells = slice(lefts[-1] // 4 + 2, (lefts[-1] + 64) // 4 - 2)
        return float((ab[-1, :, 12:24, cells] - own[-1, :, 12:24, cells]).abs().mean())

    followed = error_inside_the_patch(colorizer.ab_lowres(film, FilmState()))
    still = motion.motion_prior

    def no_motion(previous, current, size):  # the same-pixel link: the flow set to zero
        return still(previous, previous, size)

    monkeypatch.setattr(decoding, "motion_prior", no_motion)
    dragged = error_inside_the_patch(colorizer.ab_lowres(film, FilmState()))
    assert followed < 0.5 * dragged, (followed, dragged)
