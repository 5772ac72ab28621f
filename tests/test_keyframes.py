"""Keyframes: their names, their checks, the frames they colour, and the journal they change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.clips import make_clip, make_grey_copy
from tests.conftest import run_cli
from tests.test_segments_cli import frames_rgb, psnr
from vidcolor.errors import VidcolorError
from vidcolor.film.job import FilmJob, FilmOptions
from vidcolor.film.plan import InSegments, plan_film
from vidcolor.film.source import SourceFilm
from vidcolor.guidance import KeyMemory, ShotGuide, combine, match_keyframe
from vidcolor.keyframes import keyframe_files, load_keyframes

FAST = ("--size", "64")


@pytest.fixture
def colour_and_grey(tmp_path: Path) -> tuple[Path, Path]:
    colour, grey = tmp_path / "colour.mp4", tmp_path / "grey.mp4"
    make_clip(colour, frames=36, width=128, height=96, colour=True, audio=())
    make_grey_copy(colour, grey, gop=12)
    return colour, grey


def test_names_say_a_frame_number_or_a_time(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    for name in ("000120.png", "t83.500.jpg", "t2.png"):
        Image.new("RGB", (8, 6)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    files = keyframe_files(folder)
    assert [(f.path.name, f.frame, f.seconds) for f in files] == [
        ("000120.png", 120, None),
        ("t2.png", None, 2.0),
        ("t83.500.jpg", None, 83.5),
    ]
    assert files[0].time(start=1.0, frame_seconds=0.04) == pytest.approx(5.8)
    Image.new("RGB", (8, 6)).save(folder / "shot-one.png")
    with pytest.raises(VidcolorError, match="shot-one.png: a keyframe's name must say its frame"):
        keyframe_files(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VidcolorError, match="holds no image"):
        keyframe_files(empty)


def test_a_bad_keyframe_is_named(tmp_path, colour_and_grey):
    _, grey = colour_and_grey
    cases = {
        "wide": ("000000.png", (200, 96), "has another aspect ratio"),
        "late": ("t9.000.png", (128, 96), "is past the end"),
    }
    for name, (file, size, message) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        Image.new("RGB", size, (200, 40, 40)).save(folder / file)
        with SourceFilm.open(grey) as film, pytest.raises(VidcolorError, match=f"{file}: .*{message}"):
            load_keyframes(keyframe_files(folder), film)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "000003.png").write_bytes(b"not a png")
    with SourceFilm.open(grey) as film, pytest.raises(VidcolorError, match="000003.png"):
        load_keyframes(keyframe_files(broken), film)


def test_a_keyframe_colours_its_own_frame_and_its_shot(tmp_path, colour_and_grey):
    colour, grey = colour_and_grey
    truth = frames_rgb(colour)
    keys = tmp_path / "keys"
    keys.mkdir()
    Image.fromarray(truth[0].astype(np.uint8)).save(keys / "000000.png")
    automatic, guided = tmp_path / "auto.mp4", tmp_path / "guided.mp4"
    assert run_cli(str(grey), "-o", str(automatic), *FAST).returncode == 0
    done = run_cli(str(grey), "-o", str(guided), "--keyframes", str(keys), *FAST)
    assert done.returncode == 0, done.stderr
    auto_frames, guided_frames = frames_rgb(automatic), frames_rgb(guided)
    assert len(guided_frames) == len(truth)
    assert psnr(guided_frames[0], truth[0]) > 35  # the keyframe's own chroma, at full resolution
    auto_mean = np.mean([psnr(f, t) for f, t in zip(auto_frames, truth, strict=True)])
    guided_mean = np.mean([psnr(f, t) for f, t in zip(guided_frames, truth, strict=True)])
    assert guided_mean > auto_mean + 3
    assert psnr(guided_frames[-1], truth[-1]) > psnr(auto_frames[-1], truth[-1]) + 1.5
    # in segments (each with its own guide state), and for a batch of films each from its own subfolder
    films = tmp_path / "films"
    films.mkdir()
    (films / "grey.mp4").write_bytes(grey.read_bytes())
    (keys / "grey").mkdir()
    (keys / "000000.png").rename(keys / "grey" / "000000.png")
    out = tmp_path / "out"
    done = run_cli(str(films), "-o", str(out), "--keyframes", str(keys), "--segment-seconds", "0.5", *FAST)
    assert done.returncode == 0 and "3 segments" in done.stderr, done.stderr
    segmented = frames_rgb(out / "grey_color.mp4")
    assert psnr(segmented[0], truth[0]) > 35
    assert np.mean([psnr(f, t) for f, t in zip(segmented, truth, strict=True)]) > auto_mean + 3


def test_keyframes_need_the_temporal_link_and_bad_ones_fail_the_film_only(tmp_path, colour_and_grey):
    _, grey = colour_and_grey
    keys = tmp_path / "keys"
    keys.mkdir()
    Image.new("RGB", (128, 96), (10, 200, 10)).save(keys / "000000.png")
    done = run_cli(str(grey), "-o", str(tmp_path / "a.mp4"), "--keyframes", str(keys), "--no-temporal", *FAST)
    assert done.returncode == 1 and "drop --no-temporal" in done.stderr
    Image.new("RGB", (300, 96)).save(keys / "000005.png")
    done = run_cli(str(grey), "-o", str(tmp_path / "b.mp4"), "--keyframes", str(keys), *FAST)
    assert done.returncode == 1
    assert "000005.png" in done.stderr and "aspect ratio" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "b.mp4").exists()


def test_a_changed_keyframe_changes_the_journal_fingerprint(tmp_path, colour_and_grey):
    _, grey = colour_and_grey
    keys = tmp_path / "keys"
    keys.mkdir()
    Image.new("RGB", (128, 96), (10, 200, 10)).save(keys / "000000.png")
    job = FilmJob(grey, tmp_path / "out.mp4", FilmOptions(segment_seconds=0.5, keyframes=keys))
    first = plan_film(job, "colours")
    assert isinstance(first, InSegments) and not first.notices
    again = plan_film(job, "colours")
    assert isinstance(again, InSegments) and not again.notices  # the same keyframes: it resumes
    Image.new("RGB", (128, 96), (200, 10, 10)).save(keys / "000000.png")
    changed = plan_film(job, "colours")
    assert any("another input, model or settings" in notice for notice in changed.notices)
    changed.journal.remove()


def test_frames_writes_the_frame_nearest_each_time_named_for_keyframes(tmp_path, colour_and_grey):
    _, grey = colour_and_grey
    out = tmp_path / "frames"
    done = run_cli("frames", str(grey), "--at", "0.5", "--at", "0", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["t0.000.png", "t0.500.png"]
    assert [f.seconds for f in keyframe_files(out)] == [0.0, 0.5]
    done = run_cli("frames", str(grey), "--at", "30", "-o", str(out))
    assert done.returncode == 1 and "outside the film" in done.stderr


def memory(features: torch.Tensor, colours: torch.Tensor) -> KeyMemory:
    """A keyframe of uniform lightness 0.5 on a 4 x 4 output grid with 2 x 2 feature cells."""
    return KeyMemory(
        time=0.0,
        rgb=np.zeros((8, 8, 3), np.float32),
        lightness=torch.full((4, 4), 0.5),
        colours=colours,
        features=features,
        cell_lightness=torch.full((4,), 0.5),
        cell_colours=colours[::2, ::2].reshape(4, -1),
    )


def test_matching_takes_the_colours_of_the_most_similar_cells():
    q = 3
    colours = torch.zeros(4, 4, q)
    colours[:2, :, 0] = 1  # top half bin 0, bottom half bin 2
    colours[2:, :, 2] = 1
    descriptor = torch.eye(4)[[0, 0, 1, 1]]  # cells 0, 1 (top) alike; 2, 3 (bottom) alike
    key = memory(torch.cat((descriptor, descriptor), dim=1), colours)
    # the frame: the keyframe upside down, so each cell must find its colours in the other half
    frame = torch.cat((descriptor, descriptor), dim=1)[[2, 3, 0, 1]].T.reshape(-1, 2, 2)
    guide, confidence = match_keyframe(frame, torch.full((4, 4), 0.5), key)
    assert guide.shape == (4, 4, q) and torch.allclose(guide.sum(-1), torch.ones(4, 4))
    assert guide[0, 0].argmax() == 2 and guide[3, 3].argmax() == 0
    assert torch.all(confidence > 0.99)
    unlike = torch.zeros(8, 2, 2)
    unlike[-1] = 1  # a direction no keyframe cell has
    _, confidence = match_keyframe(unlike, torch.full((4, 4), 0.5), key)
    assert torch.all(confidence == 0)


def test_a_frame_that_shares_little_view_with_the_keyframe_is_not_guided_by_its_few_lookalikes():
    q = 2
    colours = torch.zeros(4, 4, q)
    colours[..., 1] = 1
    descriptor = torch.eye(4)
    key = memory(torch.cat((descriptor, descriptor), dim=1), colours)
    # one cell of the frame is the keyframe's first cell; the other three look like nothing in it
    cells = torch.zeros(4, 8)
    cells[0] = torch.cat((descriptor[0], descriptor[0]))
    cells[1:] = -cells[0]  # similarity 0 to every keyframe cell but the first (-1)
    _, confidence = match_keyframe(cells.T.reshape(-1, 2, 2), torch.full((4, 4), 0.5), key)
    assert torch.all(confidence == 0)
    # three of four cells found: the view is shared, the found cells are trusted
    cells[1:3] = torch.cat((descriptor[1:3], descriptor[1:3]), dim=1)
    _, confidence = match_keyframe(cells.T.reshape(-1, 2, 2), torch.full((4, 4), 0.5), key)
    assert confidence[0, 0] > 0.99 and confidence[3, 3] < 0.2


def test_the_motion_guide_wins_where_it_is_sure_and_matching_fills_the_rest():
    carried, matched = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 1.0]]])
    guide, confidence = combine(carried, torch.tensor([[1.0]]), matched, torch.tensor([[1.0]]))
    assert torch.allclose(guide, carried) and confidence.item() == 1
    guide, confidence = combine(carried, torch.tensor([[0.0]]), matched, torch.tensor([[0.5]]))
    assert torch.allclose(guide, matched) and confidence.item() == 0.5
    assert combine(None, None, None, None) == (None, None)


def test_a_cut_ends_the_shot_keyframe():
    colours = torch.zeros(4, 4, 2)
    colours[..., 1] = 1
    key = memory(torch.zeros(4, 8), colours)
    key.features = None  # a model without descriptors: the motion alone
    shot = ShotGuide([key], frame_seconds=0.04)
    guide, confidence = shot.guide(0.0, torch.full((4, 4), 0.5), None, False, None)
    assert torch.equal(guide, colours) and torch.all(confidence == 1) and 0.0 in shot.exact
    guide, confidence = shot.guide(0.04, torch.full((4, 4), 0.5), None, True, None)
    assert guide is None and confidence is None and shot.active is None
