"""End-to-end tests of film mode through the real ``vidcolor`` command line on generated clips.

Every test that runs the command through ``run_cli`` runs twice: in one pass, and in segments
of 0.2 s (the generated clips have a keyframe every 6 frames), so that both paths keep frames,
timestamps and streams alike. They run the network at 64 px (what is tested here is the film,
not its colours); the real film's test runs at the default size, once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests import conftest
from tests.clips import make_clip
from tests.conftest import SHARED

FILM_MODES = {"one-pass": "0", "segments": "0.2", "ray": "0.2"}
# The "ray" mode runs only when a Ray cluster's address is given here (too slow for CI, where
# tests/test_ray_engine.py covers Ray): `ray start --head --num-cpus 2`, then
# VIDCOLOR_TEST_RAY_ADDRESS=127.0.0.1:6379 python -m pytest tests/test_video_cli.py
RAY_ADDRESS = os.environ.get("VIDCOLOR_TEST_RAY_ADDRESS")
run_cli = conftest.run_cli  # replaced, test by test, by one that adds the film mode


@pytest.fixture(autouse=True, params=list(FILM_MODES))
def film_mode(request: pytest.FixtureRequest) -> str:
    """Which path the tests' ``run_cli`` takes (``--segment-seconds``, ``--engine``); tests marked
    ``one_pass`` (nothing in them differs in segments) run in one pass only."""
    if request.param != "one-pass" and request.node.get_closest_marker("one_pass"):
        pytest.skip("the same in segments")
    if request.param == "ray" and not RAY_ADDRESS:
        pytest.skip("VIDCOLOR_TEST_RAY_ADDRESS is not set")
    return request.param


@pytest.fixture(autouse=True)
def _run_cli_in_film_mode(film_mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ray = ("--engine", "ray", "--ray-address", RAY_ADDRESS) if film_mode == "ray" else ()

    def run_in_mode(*args: str) -> subprocess.CompletedProcess:
        return conftest.run_cli(*args, "--segment-seconds", FILM_MODES[film_mode], "--size", "64", *ray)

    monkeypatch.setitem(globals(), "run_cli", run_in_mode)


def frame_info(path: Path) -> tuple[list[int], Fraction, float]:
    """(pts of every decoded frame, video time base, mean chroma saturation |U-128|+|V-128|)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts, saturation = [], []
        for frame in container.decode(stream):
            pts.append(frame.pts)
            yuv = frame.reformat(format="yuv420p").to_ndarray()
            h = frame.height
            chroma = yuv[h:].astype(np.float64)
            saturation.append(np.abs(chroma - 128).mean())
        return pts, stream.time_base, float(np.mean(saturation))


def packets(path: Path, kind: str) -> list[list[tuple[bytes, int | None, float]]]:
    """Per stream of ``kind``: (payload, pts, pts in seconds) of each packet."""
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == kind]
        out: dict[int, list] = {s.index: [] for s in streams}
        for packet in container.demux(streams):
            if packet.size:
                seconds = float(packet.pts * packet.time_base) if packet.pts is not None else None
                out[packet.stream.index].append((bytes(packet), seconds))
        return [out[s.index] for s in streams]


def assert_same_packets(got: list, expected: list) -> None:
    """Identical payloads, timestamps equal within 1 ms (containers round to their own time base)."""
    assert len(got) == len(expected)
    for stream_got, stream_expected in zip(got, expected, strict=True):
        assert [p for p, _ in stream_got] == [p for p, _ in stream_expected]
        for (_, a), (_, b) in zip(stream_got, stream_expected, strict=True):
            assert (a is None and b is None) or abs(a - b) < 1e-3


def times(path: Path) -> list[float]:
    pts, time_base, _ = frame_info(path)
    return [round(float(p * time_base), 4) for p in pts]


def check_film(source: Path, target: Path, audio_identical: bool = True) -> None:
    assert target.exists()
    assert times(target) == times(source)
    _, _, saturation_in = frame_info(source)
    _, _, saturation_out = frame_info(target)
    assert saturation_out > saturation_in + 1.0  # frames are actually coloured
    with av.open(str(source)) as a, av.open(str(target)) as b:
        assert abs(a.duration - b.duration) / av.time_base <= 1.5 / float(a.streams.video[0].average_rate or 25)
        assert (b.streams.video[0].codec_context.width, b.streams.video[0].codec_context.height) == (
            a.streams.video[0].codec_context.width,
            a.streams.video[0].codec_context.height,
        )
    if audio_identical:
        assert_same_packets(packets(target, "audio"), packets(source, "audio"))
    assert not list(target.parent.glob(".*partial*"))


@pytest.mark.parametrize(
    ("name", "audio", "suffix"),
    [
        ("aac", ["aac"], ".mp4"),
        pytest.param("mp3", ["libmp3lame"], ".mp4", marks=pytest.mark.one_pass),  # copied as AAC is
        ("opus_mkv", ["libopus"], ".mkv"),
    ],
)
def test_audio_is_copied_packet_for_packet(tmp_path, name, audio, suffix):
    source = tmp_path / f"{name}{suffix}"
    make_clip(source, frames=30, audio=audio)
    result = run_cli(str(source), "--quiet")
    assert result.returncode == 0, result.stderr
    check_film(source, tmp_path / f"{name}_color{suffix}")
    assert "30 frames" in result.stderr


def test_webm_with_opus_uses_vp9(tmp_path):
    source = tmp_path / "clip.mkv"
    make_clip(source, frames=20, audio=["libopus"])
    target = tmp_path / "out.webm"
    result = run_cli(str(source), "-o", str(target))
    assert result.returncode == 0, result.stderr
    check_film(source, target)
    with av.open(str(target)) as container:
        assert container.streams.video[0].codec_context.name == "vp9"


def test_variable_frame_rate_timestamps_are_kept(tmp_path):
    source = tmp_path / "vfr.mkv"
    info = make_clip(source, frames=30, vfr=True, audio=["aac"])
    target = tmp_path / "vfr_out.mp4"
    assert run_cli(str(source), "-o", str(target)).returncode == 0
    expected = [round(float(p * info["time_base"]), 4) for p in info["pts"]]
    got = times(target)
    assert len(got) == len(expected)
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 1e-3
    check_film(source, target)


def test_rotation_is_kept(tmp_path):
    source = tmp_path / "rot.mp4"
    make_clip(source, frames=12, rotation=90)
    target = tmp_path / "rot_out.mp4"
    assert run_cli(str(source), "-o", str(target)).returncode == 0
    with av.open(str(target)) as container:
        frame = next(container.decode(video=0))
        assert frame.rotation == 90


def test_display_aspect_and_colour_tags_are_kept(tmp_path):
    source = tmp_path / "anamorphic.mp4"
    make_clip(source, frames=12, sample_aspect=Fraction(4, 3), bt709_tags=True)
    target = tmp_path / "anamorphic_out.mp4"
    assert run_cli(str(source), "-o", str(target)).returncode == 0
    with av.open(str(source)) as a, av.open(str(target)) as b:
        sa, sb = a.streams.video[0], b.streams.video[0]
        assert sb.sample_aspect_ratio == sa.sample_aspect_ratio == Fraction(4, 3)
        assert sb.display_aspect_ratio == sa.display_aspect_ratio
        fa, fb = next(a.decode(video=0)), next(b.decode(video=0))
        tags = ("colorspace", "color_primaries", "color_trc", "color_range")
        assert [getattr(fb, t) for t in tags] == [getattr(fa, t) for t in tags] == [1, 1, 1, 1]


@pytest.mark.one_pass  # tests/test_segments_cli.py interrupts a segmented run
def test_interrupt_stops_cleanly_and_leaves_no_file(tmp_path):
    source = tmp_path / "long.mp4"
    make_clip(source, frames=900, width=320, height=180)
    target = tmp_path / "long_out.mp4"
    process = subprocess.Popen(
        [sys.executable, "-m", "vidcolor", str(source), "-o", str(target), "--segment-seconds", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = tmp_path / ".long_out.partial.mp4"
    deadline = time.monotonic() + 120
    while not partial.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert partial.exists(), "the run never started writing"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]


@pytest.mark.one_pass  # no film is colorized
def test_first_interrupt_asks_the_stages_to_stop_and_a_second_raises():
    from vidcolor.film import pipeline as film_pipeline

    # Python's own handler, as in a terminal (a shell starts background jobs with SIGINT ignored)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        failure = film_pipeline.Failure()
        restore = film_pipeline.stop_on_interrupt(failure)
        # The handler is called as Python calls it on a signal. A real SIGINT raised in this process
        # segfaulted inside raise() once other tests (numba's parallel kernels) had run in it, and
        # not with pytest's faulthandler off; test_interrupt_stops_cleanly_and_leaves_no_file sends
        # a real one to a child process.
        try:
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # recorded, not raised wherever the main thread was
            assert failure.stop.is_set() and isinstance(failure.error, KeyboardInterrupt)
            with pytest.raises(KeyboardInterrupt):
                signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # the handler put back raises
        finally:
            restore()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)


def test_subtitles_and_two_audio_tracks_with_tags(tmp_path):
    source = tmp_path / "multi.mkv"
    make_clip(source, frames=24, audio=["aac", "libopus"], subtitles=True)
    target = tmp_path / "multi_out.mkv"
    result = run_cli(str(source), "-o", str(target))
    assert result.returncode == 0, result.stderr
    check_film(source, target)
    assert_same_packets(packets(target, "subtitle"), packets(source, "subtitle"))
    with av.open(str(target)) as container:
        tags = [
            (s.type, s.metadata.get("language"), s.metadata.get("title"))
            for s in container.streams
            if s.type != "video"
        ]
    assert tags == [("audio", "eng", "track 1"), ("audio", "fra", "track 2"), ("subtitle", "eng", None)]
    # MP4 cannot hold SubRip: dropped with a notice, the audio still copied
    mp4 = tmp_path / "multi_out.mp4"
    result = run_cli(str(source), "-o", str(mp4))
    assert result.returncode == 0 and "dropped subtitle stream" in result.stderr
    assert_same_packets(packets(mp4, "audio"), packets(source, "audio"))


def test_audio_the_container_cannot_hold_is_transcoded(tmp_path):
    source = tmp_path / "pcm.mkv"
    make_clip(source, frames=20, audio=["pcm_s16le"])
    target = tmp_path / "pcm_out.mp4"
    result = run_cli(str(source), "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert "transcoded audio stream" in result.stderr
    with av.open(str(target)) as container:
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]
    check_film(source, target, audio_identical=False)


@pytest.mark.one_pass  # the input side only
def test_colour_film_is_handled_as_grey(tmp_path):
    source = tmp_path / "colour.mp4"
    make_clip(source, frames=16, colour=True)
    target = tmp_path / "colour_out.mp4"
    assert run_cli(str(source), "-o", str(target)).returncode == 0
    with av.open(str(source)) as a, av.open(str(target)) as b:
        for fa, fb in zip(a.decode(video=0), b.decode(video=0), strict=True):
            ya = fa.reformat(format="yuv420p").to_ndarray()[: fa.height].astype(int)
            yb = fb.reformat(format="yuv420p").to_ndarray()[: fb.height].astype(int)
            assert np.abs(ya - yb).mean() < 2.0  # the source's own luma, re-encoded


def corrupt_packets(source: Path, target: Path, damaged: range) -> None:
    """Re-mux ``source`` with the payloads of video packets ``damaged`` replaced by noise."""
    rng = np.random.default_rng(0)
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        video_index = 0
        for packet in inp.demux():
            if packet.dts is None:
                continue
            output_stream = streams[packet.stream.index]
            if packet.stream.type == "video":
                if video_index in damaged:
                    noisy = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                    noisy.pts, noisy.dts, noisy.time_base = packet.pts, packet.dts, packet.time_base
                    packet = noisy
                video_index += 1
            packet.stream = output_stream
            out.mux(packet)


def test_corrupt_packets_mid_film_keep_frame_count_and_audio(tmp_path):
    clean = tmp_path / "clean.mkv"
    make_clip(clean, frames=60, width=160, height=96, audio=["aac"])
    broken = tmp_path / "broken.mkv"
    corrupt_packets(clean, broken, range(20, 26))
    target = tmp_path / "broken_out.mkv"
    result = run_cli(str(broken), "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert times(target) == times(clean)
    assert_same_packets(packets(target, "audio"), packets(broken, "audio"))
    assert "60 frames" in result.stderr


@pytest.mark.one_pass  # a film of one keyframe: one segment
def test_damaged_container_is_an_error_and_writes_nothing(tmp_path):
    clean = tmp_path / "clean.mkv"
    make_clip(clean, frames=60, width=160, height=96, audio=["aac"], gop=None)
    data = bytearray(clean.read_bytes())
    rng = np.random.default_rng(0)
    for offset in (len(data) // 3, len(data) // 2):
        data[offset : offset + 400] = rng.integers(0, 256, 400, dtype=np.uint8).tobytes()
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(bytes(data))
    result = run_cli(str(broken), "-o", str(tmp_path / "out.mkv"))
    assert result.returncode == 1 and "truncated or damaged" in result.stderr
    assert not (tmp_path / "out.mkv").exists()


@pytest.mark.one_pass  # the inputs fail before any segment
def test_bad_inputs_and_outputs(tmp_path):
    (tmp_path / "text.mp4").write_text("not a film")
    make_clip(tmp_path / "good.mp4", frames=10)
    whole = (tmp_path / "good.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    audio_only = tmp_path / "audio.m4a"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 2048), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 44100
        frame.pts = 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    empty_film = tmp_path / "empty.mkv"
    with av.open(str(empty_film), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = 64, 64
    out = tmp_path / "out"
    result = run_cli(
        str(tmp_path / "text.mp4"),
        str(tmp_path / "cut.mp4"),
        str(audio_only),
        str(empty_film),
        str(tmp_path / "good.mp4"),
        "-o",
        str(out),
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 4, result.stderr
    for name in ("text.mp4", "cut.mp4", "audio.m4a", "empty.mkv"):
        assert any(name in line for line in errors), (name, result.stderr)
    assert (out / "good_color.mp4").exists()
    assert sorted(p.name for p in out.iterdir()) == ["good_color.mp4"]  # nothing half-written
    again = run_cli(str(tmp_path / "good.mp4"), "-o", str(out / "good_color.mp4"))
    assert again.returncode == 1 and "exists" in again.stderr
    same = run_cli(str(tmp_path / "good.mp4"), "-o", str(tmp_path / "good.mp4"), "--overwrite")
    assert same.returncode == 1 and "overwrite the input" in same.stderr


def test_failed_encoder_leaves_no_file(tmp_path):
    make_clip(tmp_path / "good.mp4", frames=10)
    target = tmp_path / "o.mp4"
    result = run_cli(str(tmp_path / "good.mp4"), "-o", str(target), "--codec", "no-such-codec")
    assert result.returncode == 1 and "no-such-codec" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.mp4"]


@pytest.mark.skipif(not (SHARED / "data/video/chaplin-bw.mp4").exists(), reason="../shared is absent")
@pytest.mark.one_pass  # the real film has one keyframe: one segment
def test_real_black_and_white_film(tmp_path):
    source = SHARED / "data/video/chaplin-bw.mp4"
    target = tmp_path / "chaplin_color.mp4"
    result = conftest.run_cli(str(source), "-o", str(target), "--batch-size", "16")
    assert result.returncode == 0, result.stderr
    check_film(source, target)
