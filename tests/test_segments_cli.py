"""End-to-end tests of films in segments: resume after kill -9, joins, interrupts, changed settings."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from tests.clips import make_clip, make_flat_film
from tests.conftest import run_cli
from tests.test_video_cli import assert_same_packets, check_film, packets, times
from vidcolor.film.journal import JOURNAL_NAME, work_folder

FAST = ("--size", "64")


def frames_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.float64) for f in container.decode(video=0)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / max(((a - b) ** 2).mean(), 1e-12)))


def journal_of(target: Path) -> dict | None:
    try:
        return json.loads((work_folder(target) / JOURNAL_NAME).read_text())
    except (OSError, ValueError):
        return None


def start(source: Path, target: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "vidcolor", str(source), "-o", str(target), *FAST, *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when_done(process: subprocess.Popen, target: Path, segments: int) -> dict:
    """SIGKILL ``process`` once the journal holds ``segments`` finished segments; the journal then."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        journal = journal_of(target)
        if journal is not None and len(journal["done"]) >= segments:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    return journal_of(target)


def test_killed_run_resumes_and_redoes_at_most_one_segment(tmp_path):
    source = tmp_path / "film.mp4"
    make_clip(source, frames=1000, width=96, height=64, fps=25, gop=25, preset="medium", audio=["aac"])
    target = tmp_path / "film_color.mp4"
    run = start(source, target, "--segment-seconds", "4")  # 10 segments of 100 frames
    killed = kill_when_done(run, target, 6)
    assert not target.exists()
    kept_frames = sum(entry["frames"] for entry in killed["done"].values())
    assert 600 <= kept_frames < 1000

    result = run_cli(str(source), "-o", str(target), *FAST, "--segment-seconds", "4")
    assert result.returncode == 0, result.stderr
    check_film(source, target)
    assert not work_folder(target).exists()
    # the run's own report: every segment the journal held was kept, the rest done now
    match = re.search(
        r"10 segments, (\d+) of them \((\d+) frames\) kept.*?; (\d+) frames colorized now, (\d+)", result.stderr
    )
    assert match, result.stderr
    kept, frames, colorized, warmup = map(int, match.groups())
    assert (kept, frames) == (len(killed["done"]), kept_frames)
    # so what is done again is at most the part of the one segment the killed run was in
    assert colorized == 1000 - kept_frames and 0 < warmup <= 16


def test_segment_joins_match_a_one_pass_run(tmp_path):
    source = tmp_path / "film.mp4"
    make_clip(source, frames=150, width=96, height=64, fps=25, gop=12, preset="medium", audio=["aac"])
    one_pass = tmp_path / "one.mp4"
    assert run_cli(str(source), "-o", str(one_pass), *FAST, "--segment-seconds", "0").returncode == 0
    # killed after two segments, resumed: the third segment starts from a warm-up
    target = tmp_path / "segments.mp4"
    kill_when_done(start(source, target, "--segment-seconds", "1"), target, 2)
    result = run_cli(str(source), "-o", str(target), *FAST, "--segment-seconds", "1")
    assert result.returncode == 0, result.stderr
    assert "kept from an earlier run" in result.stderr
    check_film(source, target)
    assert times(target) == times(one_pass)
    worst = min(psnr(a, b) for a, b in zip(frames_rgb(target), frames_rgb(one_pass), strict=True))
    assert worst >= 35, worst


def test_interrupted_run_keeps_its_segments_unless_settings_change_or_no_resume(tmp_path):
    source = tmp_path / "film.mp4"
    make_clip(source, frames=150, width=96, height=64, fps=25, gop=25, audio=["aac"])
    target = tmp_path / "out.mp4"
    process = start(source, target, "--segment-seconds", "1")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (journal_of(target) or {}).get("done"):
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "the same command resumes" in stderr and "Traceback" not in stderr
    assert not target.exists() and not list(tmp_path.glob(".*partial*"))
    assert journal_of(target)["done"]

    # other settings: the kept work is not used
    changed = run_cli(str(source), "-o", str(target), *FAST, "--segment-seconds", "1", "--crf", "30")
    assert changed.returncode == 0, changed.stderr
    assert "another input, model or settings: starting afresh" in changed.stderr
    assert "kept from an earlier run" not in changed.stderr
    assert_same_packets(packets(target, "audio"), packets(source, "audio"))

    # --no-resume: the kept work of a killed run is removed, the film done afresh
    target.unlink()
    kill_when_done(start(source, target, "--segment-seconds", "1"), target, 1)
    afresh = run_cli(str(source), "-o", str(target), *FAST, "--segment-seconds", "1", "--no-resume")
    assert afresh.returncode == 0, afresh.stderr
    assert "--no-resume" in afresh.stderr and "kept from an earlier run" not in afresh.stderr
    assert "150 frames colorized now" in afresh.stderr
    check_film(source, target)


@pytest.mark.parametrize("suffix", [".webm", ".mkv"])
def test_segments_in_other_containers(tmp_path, suffix):
    source = tmp_path / f"film{suffix}"
    codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
    make_clip(source, frames=60, fps=24, gop=12, audio=["libopus"], video_codec=codec)
    target = tmp_path / f"out{suffix}"
    result = run_cli(str(source), "-o", str(target), *FAST, "--segment-seconds", "0.5")
    assert result.returncode == 0, result.stderr
    assert re.search(r"; [2-9] segments", result.stderr), result.stderr
    check_film(source, target)


def test_an_odd_sized_intra_only_film_in_segments(tmp_path):
    source = tmp_path / "odd.mkv"
    make_flat_film(source, "ffv1", 97, 65, frames=48, step=5)  # FFV1: every frame a keyframe
    target = tmp_path / "odd_color.mp4"
    result = run_cli(str(source), "-o", str(target), *FAST, "--segment-seconds", "0.5")
    assert result.returncode == 0, result.stderr
    assert "; 4 segments" in result.stderr and "odd side" in result.stderr
    with av.open(str(source)) as container:
        source_times = [round(float(f.pts * f.time_base), 4) for f in container.decode(video=0)]
    with av.open(str(target)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv444p"
        frames = list(container.decode(video=0))
    assert [round(float(f.pts * f.time_base), 4) for f in frames] == source_times
    assert {(f.width, f.height) for f in frames} == {(97, 65)}
