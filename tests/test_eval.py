"""``vidcolor eval``: metrics with known answers and the report through the real CLI."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.clips import make_clip
from tests.conftest import smooth_colour_image
from vidcolor import metrics
from vidcolor.color import lab_to_rgb, rgb_to_lab
from vidcolor.colorizer import ColorizerSpec
from vidcolor.evaluation import grey_image, score_image, score_photo


def test_perfect_prediction_and_grey_baseline_known_answers():
    truth = torch.from_numpy(smooth_colour_image(32, 48)).permute(2, 0, 1).float() / 255
    lab = rgb_to_lab(truth[None])
    hwc = lambda t: t.permute(1, 2, 0).double().numpy()  # noqa: E731
    scores = score_image(hwc(truth), hwc(lab[0, 1:]), hwc(truth), hwc(lab[0, 1:]))
    assert scores["psnr"] == float("inf") and scores["auc"] == pytest.approx(1.0) and scores["delta_cf"] == 0.0
    assert scores["ssim"] == pytest.approx(1.0) and scores["colourfulness_ratio"] == pytest.approx(1.0)
    grey = grey_image(lab[:, :1])[0]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert metrics.colourfulness(grey.permute(1, 2, 0).numpy()) == 0.0
    # the grey image has the truth's lightness
    assert torch.allclose(rgb_to_lab(grey[None])[0, 0], lab[0, 0], atol=1e-3)
    assert torch.allclose(lab_to_rgb(lab), truth[None], atol=1e-5)


def published_cdc(frames_uint8: np.ndarray) -> float:
    """CDC written out as the TCVC / NTIRE 2023 code states it: scipy's entropy (nats), cv2-style
    256-bin histograms over [0, 256) divided by H * W, gaps 1, 2 and 4, the mean of the nine means."""
    from scipy.stats import entropy

    def js(p, q):
        m = (p + q) / 2
        return 0.5 * entropy(p, m) + 0.5 * entropy(q, m)

    t, h, w, _ = frames_uint8.shape
    hists = [[np.histogram(f[..., c], bins=256, range=(0, 256))[0] / (h * w) for c in range(3)] for f in frames_uint8]
    means = []
    for gap in (1, 2, 4):
        for c in range(3):
            means.append(np.mean([js(hists[i][c], hists[i + gap][c]) for i in range(t - gap)]))
    return float(np.mean(means))


def test_cdc_matches_the_published_definition_and_known_answers():
    clip = np.random.default_rng(3).integers(0, 256, (9, 12, 16, 3)).astype(np.uint8)
    clip[4:] = clip[4:] // 2  # a change of distribution half-way
    assert abs(metrics.colour_distribution_consistency(clip) - published_cdc(clip)) < 1e-9
    as_float = clip.astype(np.float64) / 255  # floats in [0, 1] are read at 8 bits
    assert abs(metrics.colour_distribution_consistency(as_float) - published_cdc(clip)) < 1e-9
    still = np.random.default_rng(0).random((4, 8, 8, 3))
    assert metrics.colour_distribution_consistency(np.repeat(still[:1], 4, axis=0)) == 0.0
    black_white = np.stack([np.zeros((8, 8, 3)), np.ones((8, 8, 3))])
    assert metrics.colour_distribution_consistency(black_white) == pytest.approx(np.log(2))  # disjoint histograms
    ab = np.random.default_rng(1).random((3, 4, 4, 2))
    assert metrics.temporal_ab_error(ab, ab) == 0.0


def test_eval_cli_writes_every_report_file_it_links(tmp_path):
    photos = tmp_path / "photos"
    (photos / "nested").mkdir(parents=True)  # folders are searched recursively
    for i in range(2):
        Image.fromarray(smooth_colour_image(40, 56, seed=i)).save(photos / ("nested" if i else ".") / f"p{i}.png")
    (tmp_path / "empty").mkdir()
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=12, colour=True)
    (tmp_path / "bad.jpg").write_text("no")
    report = tmp_path / "report"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vidcolor",
            "eval",
            str(photos),
            str(clip),
            str(tmp_path / "bad.jpg"),
            str(tmp_path / "empty"),
            "-o",
            str(report),
            "--decode",
            "mean",
            "--decode",
            "mrf",
            "--max-frames",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1  # bad.jpg failed, the rest was evaluated
    assert "bad.jpg" in result.stderr and "evaluated 3 of 5" in result.stderr
    assert "no image or video files" in result.stderr
    assert "mean over photos" in result.stdout and "mean over videos" in result.stdout
    data = json.loads((report / "metrics.json").read_text())
    assert data["summary"]["photo"]["grey"]["colourfulness"] == 0.0
    assert set(data["summary"]["video"]) == {"grey", "mean", "mrf"}
    assert {"tae", "cdc", "cdc_ratio"} <= set(data["summary"]["video"]["mrf"])
    photo_rows = data["summary"]["photo"]
    assert {"frechet", "agreement"} <= set(photo_rows["mean"]) and 0 <= photo_rows["grey"]["agreement"] <= 1
    rows = (report / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("item,kind,variant,psnr") and len(rows) == 1 + 3 * 3
    page = (report / "index.html").read_text()
    links = set(re.findall(r"(?:src|href)='([^']+)'", page))
    assert links, "the page shows no pictures"
    assert {"photos/p0.png", "photos/p1.png", "videos/clip.mp4", "videos/clip_strip.png"} <= links
    for link in links:
        assert not link.startswith(("http:", "https:", "//")), link  # works offline
        assert (report / link).is_file(), link
    sheet = Image.open(report / "photos/p0.png")
    assert sheet.height == 192 and sheet.width > 4 * 100  # grey | mean | mrf | truth
    assert Path(report / "videos/clip.mp4").stat().st_size > 0


def test_a_photos_scores_do_not_depend_on_what_was_scored_before():
    colorizer = ColorizerSpec("default", 64, "cpu", "annealed", None, temporal=True).build()
    first = torch.from_numpy(smooth_colour_image(64, 64, seed=1)).permute(2, 0, 1).float() / 255
    second = torch.from_numpy(smooth_colour_image(64, 64, seed=2)).permute(2, 0, 1).float() / 255
    alone = score_photo(colorizer, second)
    score_photo(colorizer, first)
    assert score_photo(colorizer, second) == alone


def test_eval_reproduces_the_model_card_numbers(tmp_path):
    from vidcolor.models import DEFAULT_WEIGHTS

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(smooth_colour_image(48, 64, seed=i)).save(photos / f"p{i}.png")
    model = tmp_path / "m.safetensors"
    model.write_bytes(DEFAULT_WEIGHTS.read_bytes())
    model.with_suffix(".json").write_text(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    root = Path(__file__).resolve().parent.parent
    card_run = subprocess.run(
        [sys.executable, str(root / "scripts" / "model_card_metrics.py"), str(model), str(photos)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert card_run.returncode == 0, card_run.stderr
    card = json.loads(model.with_suffix(".json").read_text())["metrics"]
    report = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "vidcolor", "eval", str(photos), "-o", str(report), "--model", str(model), "-q"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((report / "metrics.json").read_text())["summary"]["photo"]
    method = card["decoding"]["method"]
    assert set(summary) == {"grey", method}
    for key, value in card["model"].items():
        assert summary[method][key] == value, key
    for key, value in card["grey"].items():
        assert summary["grey"][key] == value, key
