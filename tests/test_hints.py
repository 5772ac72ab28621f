"""Colour hints on photos: the file formats, the spread along lightness edges, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import run_cli
from vidcolor.color import rgb_to_lab
from vidcolor.errors import VidcolorError
from vidcolor.hints import POINT_SIDE, Hints, read_hints, spread
from vidcolor.image import read_image


def lab_of(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` uint8 RGB -> Lab, same leading shape."""
    flat = torch.from_numpy(rgb.reshape(-1, 3).astype(np.float64) / 255).T[None, :, :, None]
    return rgb_to_lab(flat)[0, :, :, 0].T.numpy().reshape(*rgb.shape[:-1], 3)


def test_a_hint_image_asks_for_colours_where_it_is_opaque_or_not_black(tmp_path):
    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[2, 3] = (200, 30, 30, 255)
    rgba[4, 5] = (30, 30, 200, 0)  # transparent: no hint whatever its colour
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    hints = read_hints(tmp_path / "alpha.png", (6, 8))
    assert list(zip(hints.ys, hints.xs, strict=True)) == [(2, 3)]
    assert hints.ab[0] == pytest.approx(lab_of(rgba[2, 3, :3])[1:], abs=0.05)
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[1, 1] = rgb[5, 7] = (20, 160, 40)
    Image.fromarray(rgb).save(tmp_path / "black.png")
    assert len(read_hints(tmp_path / "black.png", (6, 8)).ys) == 2
    with pytest.raises(VidcolorError, match="black.png: the hints are 8x6, the photo 9x6"):
        read_hints(tmp_path / "black.png", (6, 9))


def test_hint_points_cover_a_small_square_and_bad_points_are_named(tmp_path):
    path = tmp_path / "points.json"
    path.write_text(json.dumps([{"x": 4, "y": 3, "colour": "#c03020"}, {"x": 0, "y": 0, "colour": [0, 0, 255]}]))
    hints = read_hints(path, (10, 10))
    assert len(hints.ys) == POINT_SIDE**2 + 4  # the corner point's square is cut by the border
    assert hints.ab[0] == pytest.approx(lab_of(np.array([0xC0, 0x30, 0x20], np.uint8))[1:], abs=0.05)
    for points, message in (
        ([{"x": 12, "y": 3, "colour": "#c03020"}], r"\(12, 3\) lies outside the 10x10 photo"),
        ([{"x": 1, "y": 3, "colour": "red"}], "colour must be"),
        ({"x": 1}, "not a hints file of points"),
    ):
        path.write_text(json.dumps(points))
        with pytest.raises(VidcolorError, match=f"points.json: .*{message}"):
            read_hints(path, (10, 10))


def test_hints_spread_within_their_region_and_not_across_an_edge():
    lightness = torch.full((8, 12), 0.3)
    lightness[:, 6:] = 0.8  # an edge between the left and right halves
    hints = Hints((8, 12), np.array([4]), np.array([1]), np.array([[40.0, -10.0]], np.float32))
    ab, confidence = spread(hints, lightness, sigma=1e-4)
    assert torch.allclose(ab[:, :6], torch.tensor([40.0, -10.0]))  # the whole left region
    assert confidence[4, 1] == 1 and confidence[0, 5] > 0.7
    assert confidence[:, 6:].max() < 0.01  # the far side of the edge keeps its own colours


def test_a_photo_takes_its_hints_colours(tmp_path):
    grey = np.zeros((96, 128), np.uint8)
    grey[:, :64], grey[:, 64:] = 90, 170
    Image.fromarray(grey).save(tmp_path / "photo.png")
    points = [{"x": 30, "y": 40, "colour": [40, 90, 200]}, {"x": 100, "y": 50, "colour": [200, 170, 40]}]
    (tmp_path / "hints.json").write_text(json.dumps(points))
    done = run_cli(str(tmp_path / "photo.png"), "--hints", str(tmp_path / "hints.json"), "--size", "64")
    assert done.returncode == 0, done.stderr
    out = read_image(tmp_path / "photo_color.png").pixels
    lab = lab_of(out)
    for point in points:
        wanted = lab_of(np.array(point["colour"], np.uint8))
        assert np.abs(lab[point["y"], point["x"], 1:] - wanted[1:]).max() < 2  # the hinted pixel
    # each half of the photo takes its hint's hue, far from the hints too
    assert lab[80, 8, 2] < -20 and lab[10, 120, 2] > 20
    again = run_cli(
        str(tmp_path / "photo.png"),
        str(tmp_path / "photo.png"),
        "-o",
        str(tmp_path / "out"),
        "--hints",
        str(tmp_path / "hints.json"),
    )
    assert again.returncode == 1 and "hints go with one photo" in again.stderr


def test_hints_on_a_16_bit_photo_keep_its_depth(tmp_path):
    grey = np.tile(np.linspace(8000, 52000, 128, dtype=np.uint16), (96, 1))
    Image.fromarray(grey).save(tmp_path / "deep.png")
    (tmp_path / "hints.json").write_text(json.dumps([{"x": 64, "y": 48, "colour": [30, 160, 60]}]))
    done = run_cli(str(tmp_path / "deep.png"), "--hints", str(tmp_path / "hints.json"), "--size", "64")
    assert done.returncode == 0, done.stderr
    out = read_image(tmp_path / "deep_color.png").pixels
    assert out.dtype == np.uint16
    got = lab_of((out[48, 64] / 257).round().astype(np.uint8)[None])[0]
    assert np.abs(got[1:] - lab_of(np.array([30, 160, 60], np.uint8))[1:]).max() < 2.5
