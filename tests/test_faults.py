"""Faults a user meets: full disks, truncated and damaged films, odd sizes, huge photos, killed runs.

Each ends in a one-line error naming the right file and nothing half-written, or in a correct
output with a notice.
"""

from __future__ import annotations

import os
import resource
import signal
import struct
import subprocess
import sys
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tests.clips import make_clip, make_flat_film
from tests.conftest import run_cli_process
from vidcolor.film.source import FilmReader

FAST = ("--size", "64")  # the film is under test, not its colours


def frame_times(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [frame.pts for frame in container.decode(video=0)]


def frame_seconds(path: Path) -> list[float]:
    """Each decoded video frame's presentation time in seconds."""
    with av.open(str(path)) as container:
        return [float(frame.pts * frame.time_base) for frame in container.decode(video=0)]


def run_cli_with_file_limit(limit_bytes: int, *args: str) -> subprocess.CompletedProcess:
    """The CLI in a child that may write no file larger than ``limit_bytes`` (as on a full disk,
    writes beyond it fail with an OSError)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(
        [sys.executable, "-m", "vidcolor", *args], capture_output=True, text=True, timeout=600, preexec_fn=limit
    )


def test_a_full_disk_is_a_one_line_error_naming_the_output_and_leaves_nothing(tmp_path):
    make_clip(tmp_path / "film.mp4", frames=48, width=192, height=128)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400), np.uint8)).save(tmp_path / "photo.png")
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli_with_file_limit(6000, str(tmp_path / "film.mp4"), str(tmp_path / "photo.png"), "-o", str(out))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 2, result.stderr
    assert any(str(out / "film_color.mp4") in line and "could not write" in line for line in errors), errors
    assert any(str(out / "photo_color.png") in line and "could not write" in line for line in errors), errors
    assert list(out.iterdir()) == []  # no partial files


def cut_at_video_packet(source: Path, target: Path, keep: int) -> None:
    """Copy the bytes of ``source`` up to its video packet number ``keep`` (a download cut short:
    the header still declares the whole length)."""
    with av.open(str(source)) as container:
        positions = [p.pos for p in container.demux(video=0) if p.size]
    target.write_bytes(source.read_bytes()[: positions[keep]])


def faststart_mp4(source: Path, target: Path) -> None:
    """Remux ``source`` into an MP4 with its index (moov) first, as streaming sites serve them."""
    with av.open(str(source)) as inp, av.open(str(target), "w", options={"movflags": "+faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.size:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_film_missing_frames_of_its_declared_length_is_refused_unless_accepted(tmp_path, suffix):
    whole = tmp_path / f"whole{suffix}"
    make_clip(whole, frames=72, audio=("aac",))
    if suffix == ".mp4":
        faststart_mp4(whole, tmp_path / "fast.mp4")
        whole = tmp_path / "fast.mp4"
    cut = tmp_path / f"cut{suffix}"
    cut_at_video_packet(whole, cut, keep=69)  # about 3 frames (4 %) short
    result = run_cli_process(str(cut), "-o", str(tmp_path / "out.mkv"), *FAST)
    assert result.returncode == 1 and "frames) missing" in result.stderr and "--accept-truncated" in result.stderr
    assert not (tmp_path / "out.mkv").exists()
    accepted = run_cli_process(str(cut), "-o", str(tmp_path / "out.mkv"), "--accept-truncated", *FAST)
    assert accepted.returncode == 0, accepted.stderr
    assert "frames) missing" in accepted.stderr and 60 <= len(frame_times(tmp_path / "out.mkv")) < 72
    if suffix == ".mp4":  # a faststart MP4 declares its length up front; whole MKVs run in many other tests
        intact = run_cli_process(str(whole), "-o", str(tmp_path / "whole_out.mkv"), *FAST)
        assert intact.returncode == 0 and "frames) missing" not in intact.stderr


def test_a_truncated_film_in_segments_says_where_its_work_is_kept_and_how_to_finish(tmp_path):
    whole = tmp_path / "whole.mp4"
    make_clip(whole, frames=120, audio=("aac",))
    faststart_mp4(whole, tmp_path / "fast.mp4")
    cut = tmp_path / "cut.mp4"
    cut_at_video_packet(tmp_path / "fast.mp4", cut, keep=108)  # 90 %
    out = tmp_path / "out.mp4"
    work = tmp_path / ".out.mp4.vidcolor-work"
    result = run_cli_process(str(cut), "-o", str(out), "--segment-seconds", "1", *FAST)
    assert result.returncode == 1 and "frames) missing" in result.stderr
    assert work.is_dir() and str(work) in result.stderr and "--accept-truncated finishes from them" in result.stderr
    assert "the same command resumes" not in result.stderr and not out.exists()
    finished = run_cli_process(str(cut), "-o", str(out), "--segment-seconds", "1", "--accept-truncated", *FAST)
    assert finished.returncode == 0, finished.stderr
    assert "kept from an earlier run" in finished.stderr + finished.stdout and not work.exists()
    assert 100 <= len(frame_times(out)) <= 108


class FakeStream:
    """A film stream whose decoder returns scripted frames per packet."""

    index = 0
    start_time = 0
    time_base = Fraction(1, 24)
    average_rate = Fraction(24)
    guessed_rate = None

    def __init__(self, script: dict[int | None, list]) -> None:
        self.script = script

    def decode(self, packet):
        result = self.script.get(packet.pts if packet is not None else None, [])
        if isinstance(result, Exception):
            raise result
        return result


class FakePacket:
    def __init__(self, pts: int) -> None:
        self.pts, self.size, self.stream = pts, 100, FakeStream
        self.time_base, self.duration = FakeStream.time_base, 1


class FakeFilm:
    def __init__(self, script: dict, packets: int) -> None:
        self.stream = FakeStream(script)
        self.container = self
        self.packets = [FakePacket(p) for p in range(packets)]
        self.frame_seconds = 1 / 24

    def demux(self):
        return iter(self.packets)


def frame(pts: int, time_base: Fraction | None = Fraction(1, 24)) -> av.VideoFrame:
    made = av.VideoFrame(16, 16, "yuv420p")
    made.pts = pts
    if time_base is not None:  # a new frame has none
        made.time_base = time_base
    return made


def test_frames_the_decoder_delivers_late_never_repeat_a_timestamp():
    # packet 1 is undecodable; the decoder then delivers frame 2, the late frame 1, frame 3, and at
    # the flush a frame 5 without a time base, leaving slot 4 to be filled.
    script = {
        0: [frame(0)],
        1: av.error.InvalidDataError(1094995529, "damaged"),
        2: [frame(2)],
        3: [frame(1), frame(3)],
        None: [frame(5, time_base=None)],
    }
    emitted = []
    reader = FilmReader(FakeFilm(script, packets=6), lambda packet: False, lambda item: emitted.append(item) or True)
    assert reader.read()
    times = [f.pts for f in emitted]
    assert times == [0, 1, 2, 3, 4, 5]  # 1 and 4 repeated, the late 1 dropped
    assert reader.repeated == 2 and reader.late == 1 and reader.decode_errors == 1
    assert all(f.time_base == Fraction(1, 24) for f in emitted)


def test_an_odd_sized_film_keeps_its_size(tmp_path):
    source = tmp_path / "odd.mkv"
    make_flat_film(source, "ffv1", 321, 241, frames=6, step=40)
    target = tmp_path / "odd_color.mp4"
    result = run_cli_process(str(source), "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert "odd side" in result.stderr
    with av.open(str(target)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 6 and (frames[0].width, frames[0].height) == (321, 241)


def huge_png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares ``width`` x ``height`` grey pixels (the data is not there)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))


def test_a_photo_over_the_size_limit_is_an_error_and_the_rest_of_the_folder_is_done(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    huge_png_header(folder / "a_huge.png", 25000, 25000)  # 625 megapixels
    huge_png_header(folder / "b_large.png", 18000, 17000)  # 306 megapixels: over vidcolor's
    Image.fromarray(np.full((40, 60), 128, np.uint8)).save(folder / "c_fine.png")
    out = tmp_path / "out"
    result = run_cli_process(str(folder), "-o", str(out))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 2 and all("megapixels" in line for line in errors), result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["c_fine_color.png"]


def test_a_partial_file_left_by_a_killed_run_is_removed_by_the_next_run(tmp_path):
    make_clip(tmp_path / "film.mp4", frames=6)
    Image.fromarray(np.full((40, 60), 128, np.uint8)).save(tmp_path / "photo.png")
    stale_film = tmp_path / ".film_color.partial.mp4"
    stale_photo = tmp_path / ".photo_color.partial.png"
    stale_film.write_bytes(b"half a film")
    stale_photo.write_bytes(b"half a photo")
    result = run_cli_process(str(tmp_path / "film.mp4"), str(tmp_path / "photo.png"))
    assert result.returncode == 0, result.stderr
    assert str(stale_film) in result.stderr and str(stale_photo) in result.stderr and "removed" in result.stderr
    assert not stale_film.exists() and not stale_photo.exists()
    assert len(frame_times(tmp_path / "film_color.mp4")) == 6 and (tmp_path / "photo_color.png").exists()


def test_interlaced_film_keeps_its_field_order(tmp_path):
    source = tmp_path / "interlaced.mkv"
    options = {"flags": "+ildct+ilme", "x264-params": "tff=1"}
    make_flat_film(source, "libx264", 128, 96, frames=8, step=25, rate=25, options=options, field_order=2)  # TT
    target = tmp_path / "interlaced_color.mp4"
    assert run_cli_process(str(source), "-o", str(target)).returncode == 0
    with av.open(str(target)) as container:
        assert container.streams.video[0].codec_context.field_order == 2
        assert all(f.interlaced_frame for f in container.decode(video=0))


def test_links_in_folders_are_followed_once_and_loops_said(tmp_path):
    folder = tmp_path / "photos"
    (folder / "inner").mkdir(parents=True)
    Image.fromarray(np.full((40, 60), 128, np.uint8)).save(folder / "inner" / "a.png")
    (folder / "inner" / "back").symlink_to(folder)  # a loop
    (folder / "gone.png").symlink_to(tmp_path / "missing.png")  # a broken link
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Image.fromarray(np.full((40, 60), 90, np.uint8)).save(elsewhere / "b.png")
    (folder / "linked").symlink_to(elsewhere)  # a linked folder: followed
    result = run_cli_process("eval", str(folder), "-o", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    assert "a loop" in result.stderr and "broken link" in result.stderr
    assert "evaluated 2 of 2" in result.stderr


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc (unwritable even for root)")
def test_an_unwritable_output_folder_is_an_error_naming_the_output(tmp_path):
    make_clip(tmp_path / "film.mp4", frames=4)
    Image.fromarray(np.full((40, 60), 128, np.uint8)).save(tmp_path / "photo.png")
    for source, target in ((tmp_path / "film.mp4", "/proc/film_out.mp4"), (tmp_path / "photo.png", "/proc/p.png")):
        result = run_cli_process(str(source), "-o", target)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and f"{target}: could not write" in errors[0], result.stderr


@pytest.fixture
def read_only_folder(tmp_path):
    """A read-only tmpfs (EROFS, which even root cannot write), unmounted afterwards; skipped where
    mounting is not allowed."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("segments", ["0", "0.1"])
def test_a_read_only_file_system_is_an_error_naming_the_output(tmp_path, read_only_folder, segments):
    make_clip(tmp_path / "film.mp4", frames=8)
    Image.fromarray(np.full((40, 60), 128, np.uint8)).save(tmp_path / "photo.png")
    for source, target in ((tmp_path / "film.mp4", "film.mp4"), (tmp_path / "photo.png", "p.png")):
        output = read_only_folder / target
        result = run_cli_process(str(source), "-o", str(output), "--segment-seconds", segments)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and f"{output}: could not write (Read-only file system)" in errors[0], result.stderr
        assert "please report" not in result.stderr and ".partial" not in result.stderr


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_a_film_on_a_single_cpu_finishes_and_exits(tmp_path):
    """One CPU (a small container): with OpenVINO's libtbb loaded, numba's TBB pool used to hang
    the process at exit after the film was written (the film chroma is a parallel kernel, so
    every film ran into it); the OpenMP layer comes first now."""
    film = tmp_path / "f.mp4"
    make_clip(film, frames=8)
    first_cpu = min(os.sched_getaffinity(0))
    result = subprocess.run(
        [sys.executable, "-m", "vidcolor", str(film), "-o", str(tmp_path / "o.mp4"), *FAST],
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=lambda: os.sched_setaffinity(0, {first_cpu}),
    )
    assert result.returncode == 0, result.stderr
    assert len(frame_times(tmp_path / "o.mp4")) == 8


def make_mjpeg_avi(path: Path, frames: int = 30) -> None:
    """An MJPEG AVI with PCM audio, as archives and old cameras write them."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mjpeg", rate=25)
        video.width, video.height, video.pix_fmt = 96, 64, "yuvj420p"
        audio = container.add_stream("pcm_s16le", rate=16000)
        audio.layout = "mono"
        for i in range(frames):
            picture = np.full((64, 96, 3), (i * 8) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuvj420p")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            container.mux(video.encode(frame))
            tone = (np.sin(np.arange(640) / 5) * 3000).astype(np.int16)[None]
            sound = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
            sound.sample_rate, sound.pts = 16000, i * 640
            container.mux(audio.encode(sound))
        container.mux(video.encode())
        container.mux(audio.encode())


def test_an_avi_output_is_mjpeg_at_the_source_times_and_h264_there_has_no_reordered_frames(tmp_path):
    source, out, h264 = tmp_path / "film.avi", tmp_path / "out.avi", tmp_path / "h264.avi"
    make_mjpeg_avi(source)
    result = run_cli_process(str(source), "-o", str(out), *FAST)
    assert result.returncode == 0, result.stderr

    with av.open(str(out)) as container:
        assert container.streams.audio and container.streams.video[0].codec_context.name == "mjpeg"
    assert len(frame_seconds(out)) == 30
    assert max(abs(a - b) for a, b in zip(frame_seconds(out), frame_seconds(source), strict=True)) < 0.001
    result = run_cli_process(str(source), "-o", str(h264), "--codec", "libx264", *FAST)
    assert result.returncode == 0, result.stderr
    with av.open(str(h264)) as container:
        decoded = [frame.pts for frame in container.decode(video=0)]
        assert container.streams.video[0].codec_context.name == "h264"
    assert len(decoded) == 30 and decoded == sorted(decoded)  # B-frames would come out of order


def make_finely_timed_mp4(path: Path, frames: int = 60) -> None:
    """An MP4 whose time base (1/12288) is finer than its 25 fps, with AAC audio that starts with
    its priming packet before 0 (MP4 hides it with an edit list), as phones and editors write."""
    tick = Fraction(1, 12288)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25, options={"g": "6", "preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        video.time_base = tick
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for i in range(frames):
            picture = np.full((64, 96, 3), (i * 8) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = round(Fraction(i, 25) / tick), tick
            container.mux(video.encode(frame))
        for j in range(frames * 640 // 1024):
            tone = (np.sin(np.arange(1024) / 5) * 3000).astype(np.int16)[None]
            sound = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
            sound.sample_rate, sound.pts = 16000, j * 1024
            container.mux(audio.encode(sound))
        container.mux(video.encode())
        container.mux(audio.encode())


@pytest.mark.parametrize("segments", ["0", "0.5"], ids=["one-pass", "segments"])
def test_an_avi_from_a_finely_timed_mp4_with_aac_counts_frames_at_the_films_rate(tmp_path, segments):
    """AVI counts frames: a 1/12288 time base came out as 600 fps, and the AAC priming packet
    (before 0) made FFmpeg shift every frame after the first by 0.064 s."""
    source, out = tmp_path / "film.mp4", tmp_path / "out.avi"
    make_finely_timed_mp4(source)
    result = run_cli_process(str(source), "-o", str(out), "--segment-seconds", segments, *FAST)
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == 25 and container.streams.audio
        first_audio = next(container.demux(audio=0)).pts
    assert first_audio == 0
    colour, grey = frame_seconds(out), frame_seconds(source)
    assert len(colour) == len(grey) == 60
    assert max(abs(a - b) for a, b in zip(colour, grey, strict=True)) < 0.001
