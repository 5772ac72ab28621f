"""Generate small test films with PyAV: grey or colour video, audio tracks, subtitles, VFR, rotation."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def make_flat_film(
    path: Path,
    codec: str,
    width: int,
    height: int,
    frames: int,
    step: int,
    rate: int = 24,
    options: dict[str, str] | None = None,
    field_order: int | None = None,
) -> None:
    """A video-only film of flat grey frames, frame ``i`` at level ``step * i`` and pts ``i``
    (time base 1/``rate``), coded by ``codec`` with ``options`` (and ``field_order``, an
    AVFieldOrder code), at any size ``codec`` takes (FFV1: odd sizes too)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if field_order is not None:
            stream.codec_context.field_order = field_order
        for index in range(frames):
            made = av.VideoFrame.from_ndarray(np.full((height, width, 3), step * index, np.uint8), format="rgb24")
            made.pts = index
            container.mux(stream.encode(made))
        container.mux(stream.encode(None))


def frame_pixels(index: int, width: int, height: int, colour: bool) -> np.ndarray:
    """``(H, W, 3)`` uint8: a moving pattern with a bright disc, grey unless ``colour``."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 110 + 70 * np.sin((x + 3 * index) / 13.0) * np.cos(y / 11.0)
    disc = ((x - (index * 2) % width) ** 2 + (y - height / 2) ** 2) < (height / 4) ** 2
    base = np.where(disc, 220, base)
    if colour:
        rgb = np.stack([base, base * 0.6 + 40, 255 - base], axis=2)
    else:
        rgb = np.repeat(base[..., None], 3, axis=2)
    return rgb.clip(0, 255).astype(np.uint8)


def make_clip(
    path: Path,
    frames: int = 24,
    width: int = 96,
    height: int = 64,
    fps: int = 24,
    audio: list[str] | tuple[str, ...] = ("aac",),
    vfr: bool = False,
    rotation: int = 0,
    subtitles: bool = False,
    colour: bool = False,
    video_codec: str = "libx264",
    sample_aspect: Fraction | None = None,
    bt709_tags: bool = False,
    gop: int | None = 6,
    preset: str = "ultrafast",
) -> dict:
    """Write a clip and return what it holds: frame pts, time base, audio packet count.

    ``gop``: frames between keyframes (None: the encoder's default, 250 for libx264; the
    default 6 lets films of a second be cut into segments);
    ``preset``: libx264's (``medium`` codes B-frames, ``ultrafast`` none).
    """
    container = av.open(str(path), "w")
    video = container.add_stream(video_codec, rate=fps)
    video.width, video.height = width, height
    video.pix_fmt = "yuv420p"
    time_base = Fraction(1, fps * 10 if vfr else fps)
    video.time_base = time_base
    video.codec_context.time_base = time_base
    if video_codec == "libx264":
        video.codec_context.options = {"preset": preset}
    if gop is not None:
        video.codec_context.gop_size = gop
    if sample_aspect is not None:
        video.codec_context.sample_aspect_ratio = sample_aspect
    if bt709_tags:
        context = video.codec_context
        context.colorspace, context.color_primaries, context.color_trc, context.color_range = 1, 1, 1, 1
    if rotation:
        video.set_display_rotation(rotation)
    audio_streams = []
    for i, codec in enumerate(audio):
        stream = container.add_stream(codec, rate=48000 if codec == "libopus" else 44100)
        stream.layout = "stereo"
        stream.metadata["language"] = ["eng", "fra", "deu"][i % 3]
        stream.metadata["title"] = f"track {i + 1}"
        audio_streams.append(stream)
    subtitle_stream = container.add_mux_stream("subrip", time_base=Fraction(1, 1000)) if subtitles else None
    if subtitle_stream is not None:
        subtitle_stream.metadata["language"] = "eng"
    pts_list = []
    pts = 0
    for index in range(frames):
        frame = av.VideoFrame.from_ndarray(frame_pixels(index, width, height, colour), format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        pts_list.append(pts)
        pts += (7 if index % 3 == 0 else 13) if vfr else 1
        for packet in video.encode(frame):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    duration = float(pts * time_base)
    for k, stream in enumerate(audio_streams):
        rate = stream.rate
        samples_per_frame = stream.codec_context.frame_size or 1024
        total = int(duration * rate)
        t = np.arange(total) / rate
        wave = (0.3 * np.sin(2 * np.pi * (330 + 110 * k) * t)).astype(np.float32)
        fmt = stream.codec_context.codec.audio_formats[0].name
        resampler = av.AudioResampler(format=fmt, layout="stereo", rate=rate)
        for start in range(0, total, samples_per_frame):
            chunk = wave[start : start + samples_per_frame]
            audio_frame = av.AudioFrame.from_ndarray(
                np.stack([chunk, chunk])[None].reshape(1, -1), format="flt", layout="stereo"
            )
            audio_frame.sample_rate = rate
            audio_frame.pts = start
            audio_frame.time_base = Fraction(1, rate)
            for resampled in resampler.resample(audio_frame):
                for packet in stream.encode(resampled):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    if subtitle_stream is not None:
        for i, text in enumerate(["Hello", "world"]):
            packet = av.Packet(text.encode())
            packet.stream = subtitle_stream
            packet.pts = packet.dts = int(i * duration / 2 * 1000)
            packet.duration = 300
            packet.time_base = Fraction(1, 1000)
            container.mux(packet)
    container.close()
    return {"pts": pts_list, "time_base": time_base, "duration": duration}


def make_grey_copy(source: Path, target: Path, limit: int | None = None, gop: int | None = None) -> None:
    """``source``'s film (its first ``limit`` frames) with the chroma set to neutral and the luma
    kept, as H.264 at CRF 12 (a keyframe every ``gop`` frames; None: the encoder's default) with
    the source's time base and timestamps: a colour clip turned grey, whose truth is the source."""
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        film = inp.streams.video[0]
        options = {"crf": "12", "preset": "fast", **({"g": str(gop)} if gop else {})}
        video = out.add_stream("libx264", rate=film.average_rate or 25, options=options)
        video.width, video.height, video.pix_fmt = film.width, film.height, "yuv420p"
        video.time_base = film.time_base
        for count, frame in enumerate(inp.decode(film)):
            if limit is not None and count >= limit:
                break
            planar = frame.reformat(format="yuv420p")
            for plane in planar.planes[1:]:
                plane.update(np.full(plane.buffer_size, 128, np.uint8).tobytes())
            planar.pts, planar.time_base = frame.pts, frame.time_base
            planar.pict_type = av.video.frame.PictureType.NONE
            out.mux(video.encode(planar))
        out.mux(video.encode(None))
