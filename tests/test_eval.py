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
from vidcolor.evaluation import grey_image
from vidcolor.report import _frame_scores


def test_perfect_prediction_and_grey_baseline_known_answers():
    truth = torch.from_numpy(smooth_colour_image(32, 48)).permute(2, 0, 1).float() / 255
    lab = rgb_to_lab(truth[None])
    scores = _frame_scores(truth, lab[0, 1:], truth, lab[0, 1:])
    assert scores["psnr"] == float("inf") and scores["auc"] == pytest.approx(1.0)
    assert scores["ssim"] == pytest.approx(1.0) and scores["colourfulness_ratio"] == pytest.approx(1.0)
    grey = grey_image(lab[:, :1])[0]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert metrics.colourfulness(grey.permute(1, 2, 0).numpy()) == 0.0
    # the grey image has the truth's lightness
    assert torch.allclose(rgb_to_lab(grey[None])[0, 0], lab[0, 0], atol=1e-3)
    assert torch.allclose(lab_to_rgb(lab), truth[None], atol=1e-5)


def test_cdc_and_tae_known_answers():
    still = np.random.default_rng(0).random((4, 8, 8, 3))
    same = np.repeat(still[:1], 4, axis=0)
    assert metrics.colour_distribution_consistency(same) == 0.0
    black_white = np.stack([np.zeros((8, 8, 3)), np.ones((8, 8, 3))])
    assert metrics.colour_distribution_consistency(black_white) == pytest.approx(1.0)  # disjoint histograms
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
    assert {"tae", "cdc"} <= set(data["summary"]["video"]["mrf"])
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
