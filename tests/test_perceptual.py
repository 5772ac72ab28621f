"""The perceptual yardstick: Frechet distance of classifier features, and classifier agreement."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from threadpoolctl import threadpool_info

from tests.conftest import SHARED, run_cli, smooth_colour_image
from vidcolor import perceptual
from vidcolor.errors import VidcolorError
from vidcolor.evaluation import load_rgb


def test_frechet_distance_known_answers():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    assert perceptual.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    shifted = a + np.array([2.0, 0.0, 0.0])  # same covariance, mean moved by 2: distance 4
    assert perceptual.frechet_distance(shifted, a) == pytest.approx(4.0, abs=1e-6)
    scaled = a * 2.0  # trace(S1 + S2 - 2 sqrt(S1 S2)) = 3 * (4 + 1 - 4) = 3 for unit covariance
    assert perceptual.frechet_distance(scaled, a) == pytest.approx(3.0, rel=0.1)


def test_frechet_maths_runs_on_one_blas_thread(monkeypatch):
    """OpenBLAS's threaded product stalled for minutes in `vidcolor eval` on a 2-core VM."""
    seen = []
    real_cov = np.cov

    def recording_cov(*args, **kwargs):
        seen.extend(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")
        return real_cov(*args, **kwargs)

    monkeypatch.setattr(perceptual.np, "cov", recording_cov)
    rng = np.random.default_rng(1)
    perceptual.frechet_distance(rng.standard_normal((6, 64)), rng.standard_normal((5, 64)))
    assert seen and set(seen) == {1}


def test_the_judge_sees_a_photo_and_its_grey_copy_differently():
    judge = perceptual.load_judge()
    photos = sorted((SHARED / "data" / "val" / "kodak24").glob("*.png"))[:4]
    rgb = torch.stack([perceptual.centre_crop(load_rgb(p)[None])[0] for p in photos])
    features, classes = perceptual.judge_images(judge, rgb)
    assert features.shape == (4, 1280) and classes.shape == (4,)
    again, classes_again = perceptual.judge_images(judge, rgb)
    assert (classes == classes_again).all() and np.allclose(features, again)
    grey = rgb.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    grey_features, _ = perceptual.judge_images(judge, grey)
    assert np.abs(grey_features - features).mean() > 0.01


def test_centre_crop_keeps_the_middle_at_224():
    image = torch.zeros(1, 3, 100, 300)
    image[..., 100:200] = 1.0  # the middle third
    crop = perceptual.centre_crop(image)
    assert crop.shape == (1, 3, 224, 224) and crop.mean() > 0.95


def test_eval_says_when_the_classifier_is_missing(tmp_path, monkeypatch):
    Image.fromarray(smooth_colour_image(48, 64)).save(tmp_path / "p.png")

    def missing():
        raise VidcolorError("no package")

    monkeypatch.setattr(perceptual, "imagenet_weights_file", missing)
    result = run_cli("eval", str(tmp_path / "p.png"), "-o", str(tmp_path / "r"), "-q", "--decode", "mean")
    assert result.returncode == 0, result.stderr
    assert "vidcolor[train]" in result.stderr
    summary = json.loads((tmp_path / "r" / "metrics.json").read_text())["summary"]["photo"]
    assert "frechet" not in summary["mean"] and "psnr" in summary["mean"]


def test_eval_adds_the_held_out_files_of_training_folders(tmp_path):
    from vidcolor.inputs import is_held_out

    val, train = tmp_path / "val", tmp_path / "train"
    val.mkdir(), train.mkdir()
    Image.fromarray(smooth_colour_image(48, 64, seed=9)).save(val / "v.png")
    names = [f"t{i}.png" for i in range(30)]
    for i, name in enumerate(names):
        Image.fromarray(smooth_colour_image(40, 40, seed=i)).save(train / name)
    held = [n for n in names if is_held_out(train / n, 0.2)]
    args = ["eval", str(val), "--held-out-of", str(train), "--held-out", "0.2", "-o", str(tmp_path / "r")]
    result = run_cli(*args, "-q", "--decode", "mean", "--no-perceptual")
    assert result.returncode == 0, result.stderr
    items = json.loads((tmp_path / "r" / "metrics.json").read_text())["items"]
    assert sorted(i["name"] for i in items) == sorted(["v.png", *held]) and 0 < len(held) < 30
    assert run_cli("eval", str(val), "--held-out-of", str(train), "-o", str(tmp_path / "r2")).returncode == 2
