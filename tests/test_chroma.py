"""The fused CPU chroma kernel gives the torch path's chroma planes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch.nn import functional

from vidcolor.color import compose_lab, lab_to_rgb
from vidcolor.colorizer import upsample_ab
from vidcolor.film.frames import luma_to_lightness_8bit, rgb_to_chroma, shrink_luma
from vidcolor.film.frames_cpu import chroma_from_ab


def torch_chroma(luma: torch.Tensor, ab: torch.Tensor, full_range: bool, matrix: str):
    lightness = luma_to_lightness_8bit(luma, full_range)
    size = ((luma.shape[1] + 1) // 2, (luma.shape[2] + 1) // 2)
    small = functional.interpolate(lightness, size=size, mode="area")
    return rgb_to_chroma(lab_to_rgb(compose_lab(small, upsample_ab(ab, size))), full_range, matrix)


@pytest.mark.parametrize(("height", "width"), [(36, 64), (41, 33), (1, 1), (90, 160)])
@pytest.mark.parametrize(("full_range", "matrix"), [(False, "bt601"), (True, "bt709")])
def test_fused_kernel_matches_the_torch_path_to_one_code(height, width, full_range, matrix):
    generator = torch.Generator().manual_seed(height * width)
    luma = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
    ab = torch.rand(3, 2, 16, 16, generator=generator) * 220 - 110  # out of gamut too: clipping
    expected_u, expected_v = torch_chroma(luma, ab, full_range, matrix)
    u, v = chroma_from_ab(luma, ab, full_range, matrix)
    assert u.shape == expected_u.shape == (3, (height + 1) // 2, (width + 1) // 2) and u.dtype == torch.uint8
    assert (u.int() - expected_u.int()).abs().max() <= 1 and (v.int() - expected_v.int()).abs().max() <= 1
    assert (u != expected_u).float().mean() < 0.01 and (v != expected_v).float().mean() < 0.01


@pytest.mark.parametrize(
    ("rows", "columns", "height", "width"),
    [(1080, 1920, 192, 352), (1088, 1920, 192, 352), (721, 1279, 192, 352), (256, 256, 256, 256)],
)
def test_shrinking_luma_in_two_steps_is_the_area_average(rows, columns, height, width):
    y, x = np.mgrid[0:rows, 0:columns]
    plane = (127 + 60 * np.sin(x / 37.0) + 60 * np.cos(y / 23.0)).astype(np.uint8)  # a smooth picture
    small = shrink_luma(plane, height, width)
    direct = cv2.resize(plane, (width, height), interpolation=cv2.INTER_AREA)
    assert small.shape == (height, width) and small.dtype == np.uint8
    difference = np.abs(small.astype(np.int16) - direct)
    assert difference.max() <= 2 and difference.mean() < 0.5  # codes: the rounding of the first step
