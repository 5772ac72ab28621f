"""Film mode: a streaming PyAV pipeline that colorizes the video and keeps every other stream.

Three threads joined by bounded queues overlap the work:

    read (demux + threaded decode) -> colour (batch luma -> network -> chroma, on the device)
        -> write (encode + mux, packets of the other streams copied in demux order)

Each output frame is the decoded source frame itself with only its chroma planes replaced:
the luma plane, timestamps, rotation and colour tags are the source's. Frames whose packets
fail to decode are replaced by the previous frame at the same timestamp, so the frame count
and the audio sync are kept. The output is written to a hidden temporary file beside the
target and renamed at the end; a failed or interrupted run leaves nothing under the target.
"""

from __future__ import annotations

import heapq
import io
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vidcolor.chroma import chroma_planes
from vidcolor.colorizer import Colorizer
from vidcolor.decoding import FilmState
from vidcolor.errors import VidcolorError

# How many items may wait between two stages (frames and copied packets).
READ_QUEUE_ITEMS = 64
BATCH_QUEUE_BATCHES = 2
# Containers that only accept their own family of audio codecs, and the encoder to use there.
AUDIO_FALLBACK = {"webm": "libopus", "ogg": "libopus"}
VIDEO_DEFAULT = {"webm": "libvpx-vp9", "ogg": "libtheora"}
STANDARD_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 6: "5.1", 8: "7.1"}
# The header-only probe accepts some codecs that the MP4/MOV muxers then refuse at the trailer
# (e.g. PCM with an unspecified channel layout): there, copy only these audio codecs.
MP4_AUDIO_COPY = {"aac", "mp3", "mp2", "ac3", "eac3", "opus", "alac", "flac"}


def _encoder_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    if codec in ("libx264", "libx265"):
        return {"crf": str(crf), "preset": preset}
    if codec.startswith("libvpx"):
        return {"crf": str(crf + 13), "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"}
    return {}


@dataclass
class VideoOptions:
    """Encoder and batching choices of ``vidcolor FILM``."""

    codec: str | None = None  # None: libx264, or libvpx-vp9 for WebM
    crf: int = 18
    preset: str = "medium"
    batch_size: int = 8


@dataclass
class _Frame:
    frame: av.VideoFrame


@dataclass
class _Packet:
    packet: av.Packet


@dataclass
class _Batch:
    items: list
    chroma: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


_END = object()


@dataclass
class _StreamPlan:
    """What happens to one non-film input stream: copied, transcoded, or dropped."""

    action: str
    output: av.stream.Stream | None = None
    resampler: av.AudioResampler | None = None
    note: str = ""


def _container_accepts(format_name: str, stream: av.stream.Stream) -> bool:
    """Whether a container format can hold ``stream``'s codec as is (a header is written in memory)."""
    if (
        stream.type == "audio"
        and format_name.split(",")[0] in ("mov", "mp4")
        and (stream.codec_context.codec.canonical_name not in MP4_AUDIO_COPY)
    ):
        return False
    buffer = io.BytesIO()
    try:
        with av.open(buffer, "w", format=format_name) as probe:
            probe.add_stream_from_template(stream)
            probe.start_encoding()
        return True
    except (av.error.FFmpegError, ValueError, TypeError, NotImplementedError):
        return False


def _describe(stream: av.stream.Stream) -> str:
    name = stream.codec_context.name if stream.codec_context else "unknown"
    language = stream.metadata.get("language")
    return f"{stream.type} stream #{stream.index} ({name}{', ' + language if language else ''})"


def _plan_streams(inp, out, film: av.video.stream.VideoStream, notices: list[str]) -> dict[int, _StreamPlan]:
    plans: dict[int, _StreamPlan] = {}
    for stream in inp.streams:
        if stream.index == film.index:
            continue
        if stream.type not in ("audio", "subtitle", "data", "video", "attachment"):
            notices.append(f"dropped {_describe(stream)}: unsupported stream type")
            plans[stream.index] = _StreamPlan("drop")
            continue
        if _container_accepts(out.format.name, stream):
            output = out.add_stream_from_template(stream)
            output.metadata.update(stream.metadata)
            plans[stream.index] = _StreamPlan("copy", output)
            continue
        if stream.type == "audio":
            encoder = AUDIO_FALLBACK.get(out.format.name.split(",")[0], "aac")
            output = out.add_stream(encoder, rate=stream.codec_context.sample_rate or 48000)
            channels = stream.codec_context.layout.nb_channels or 2
            output.layout = STANDARD_LAYOUTS.get(channels, "stereo")
            output.metadata.update(stream.metadata)
            format_name = output.codec_context.codec.audio_formats[0].name
            resampler = av.AudioResampler(
                format=format_name,
                layout=output.layout,
                rate=output.rate,
                frame_size=960 if encoder == "libopus" else 1024,
            )
            plans[stream.index] = _StreamPlan("transcode", output, resampler)
            notices.append(f"transcoded {_describe(stream)} to {encoder}: {out.format.name} cannot hold it")
            continue
        notices.append(f"dropped {_describe(stream)}: the {out.format.name} container cannot hold it")
        plans[stream.index] = _StreamPlan("drop")
    return plans


def _probe_first_frame(source: Path) -> av.VideoFrame | None:
    """The first decodable frame (for rotation and colour tags), or None when there is none."""
    try:
        with av.open(str(source)) as probe:
            for frame in probe.decode(video=0):
                return frame
    except av.error.FFmpegError:
        return None
    return None


def _declared_seconds(stream: av.video.stream.VideoStream, container) -> float | None:
    """The film's length in seconds as its container declares it, if it does."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _expected_frames(stream: av.video.stream.VideoStream, container) -> int | None:
    if stream.frames:
        return stream.frames
    rate = stream.average_rate or stream.guessed_rate
    if container.duration and rate:
        return int(round(container.duration / av.time_base * float(rate)))
    return None


class _Failure:
    """The first exception raised in any stage, and a flag telling the others to stop."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def record(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.stop.set()


def _stop_on_interrupt(failure: _Failure) -> Callable[[], None]:
    """Make Ctrl-C ask every stage to stop (recorded in ``failure``) rather than raise wherever
    the main thread happens to be (possibly inside a library that loses it); a second Ctrl-C
    raises at once. Only in the main thread. Returns the function that restores the old handler.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)
    if previous is None:  # installed outside Python: leave it alone
        return lambda: None

    def handler(signum: int, frame: object) -> None:
        failure.record(KeyboardInterrupt())
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, handler)
    return lambda: signal.signal(signal.SIGINT, previous)


def _put(q: queue.Queue, item, failure: _Failure) -> bool:
    while not failure.stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, failure: _Failure):
    while not failure.stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    return _END


def _repeat_at(frame: av.VideoFrame, pts: int) -> av.VideoFrame:
    """A new frame with ``frame``'s pixels at timestamp ``pts``."""
    copy = av.VideoFrame(frame.width, frame.height, frame.format.name)
    for target, source in zip(copy.planes, frame.planes, strict=True):
        if target.buffer_size == source.buffer_size:
            target.update(bytes(source))
        else:  # different row padding: copy row by row through NumPy
            rows = np.frombuffer(source, np.uint8).reshape(-1, source.line_size)
            padded = np.zeros((rows.shape[0], target.line_size), np.uint8)
            width = min(source.line_size, target.line_size)
            padded[:, :width] = rows[:, :width]
            target.update(padded.tobytes())
    copy.pts = pts
    copy.time_base = frame.time_base
    for name in ("color_range", "colorspace", "color_primaries", "color_trc"):
        setattr(copy, name, getattr(frame, name))
    return copy


class _Reader:
    """Demux and decode; emits frames (gaps from undecodable packets filled) and other packets."""

    def __init__(self, inp, film, plans, out_queue: queue.Queue, failure: _Failure) -> None:
        self.inp, self.film, self.plans, self.queue, self.failure = inp, film, plans, out_queue, failure
        self.pending: list[int] = []  # pts of film packets whose frames have not come out yet
        self.previous: av.VideoFrame | None = None
        self.decode_errors = 0
        self.repeated = 0
        self.frames = 0
        self.last_time: float | None = None  # start time (s) of the latest frame decoded

    def _emit_frame(self, frame: av.VideoFrame) -> bool:
        if frame.pts is not None:
            while self.pending and self.pending[0] < frame.pts:
                if not self._repeat(heapq.heappop(self.pending)):
                    return False
            while self.pending and self.pending[0] == frame.pts:
                heapq.heappop(self.pending)
        self.previous = frame
        self.frames += 1
        if frame.pts is not None and frame.time_base is not None:
            start = float((frame.pts - (self.film.start_time or 0)) * frame.time_base)
            self.last_time = max(self.last_time or 0.0, start)
        return _put(self.queue, _Frame(frame), self.failure)

    def _repeat(self, pts: int) -> bool:
        """Stand in for the undecodable frame at ``pts`` with a copy of the previous one."""
        if self.previous is None:
            return True  # nothing decoded yet to stand in for it
        self.repeated += 1
        self.frames += 1
        return _put(self.queue, _Frame(_repeat_at(self.previous, pts)), self.failure)

    def _decode(self, packet: av.Packet | None) -> bool:
        try:
            frames = self.film.decode(packet)
        except av.error.InvalidDataError:
            self.decode_errors += 1
            return True
        except av.error.FFmpegError as error:
            if packet is None:
                return True
            self.decode_errors += 1
            if self.decode_errors > 1000:
                raise VidcolorError(f"too many undecodable frames ({error})") from None
            return True
        for frame in frames:
            if not self._emit_frame(frame):
                return False
        return True

    def run(self) -> None:
        try:
            for packet in self.inp.demux():
                if self.failure.stop.is_set():
                    return
                if packet.stream.index == self.film.index:
                    if packet.size and packet.pts is not None:
                        heapq.heappush(self.pending, packet.pts)
                    if not self._decode(packet if packet.size else None):
                        return
                elif (
                    packet.dts is not None and self.plans.get(packet.stream.index, _StreamPlan("drop")).action != "drop"
                ):
                    if not _put(self.queue, _Packet(packet), self.failure):
                        return
            self._decode(None)
            for pts in sorted(self.pending):
                if not self._repeat(pts):
                    return
            self.pending.clear()
            _put(self.queue, _END, self.failure)
        except av.error.FFmpegError as error:
            self.failure.record(VidcolorError(f"unreadable at {self.frames} frames: {error}"))
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            self.failure.record(error)


def _to_planar(frame: av.VideoFrame) -> av.VideoFrame:
    if frame.format.name in ("yuv420p", "yuvj420p"):
        return frame
    return frame.reformat(format="yuv420p")


def _plane_array(plane, height: int, width: int) -> np.ndarray:
    data = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return data[:height, :width]


def _colour_stage(
    in_queue: queue.Queue, out_queue: queue.Queue, colorize_chroma: Callable, batch_size: int, failure: _Failure
) -> None:
    """Gather frames into batches and compute their chroma planes."""
    try:
        finished = False
        while not finished:
            items: list = []
            frames = 0
            while frames < batch_size:
                item = _get(in_queue, failure)
                if item is _END:
                    finished = True
                    break
                if isinstance(item, _Frame):
                    item.frame = _to_planar(item.frame)
                    frames += 1
                items.append(item)
            if failure.stop.is_set():
                return
            batch = _Batch(items)
            film_frames = [item.frame for item in items if isinstance(item, _Frame)]
            if film_frames:
                batch.chroma = colorize_chroma(film_frames)
            if not _put(out_queue, batch, failure):
                return
        _put(out_queue, _END, failure)
    except BaseException as error:  # noqa: BLE001
        failure.record(error)


def _write_planes(frame: av.VideoFrame, u: np.ndarray, v: np.ndarray) -> None:
    for plane, values in ((frame.planes[1], u), (frame.planes[2], v)):
        height, width = values.shape
        if plane.line_size == width:
            plane.update(np.ascontiguousarray(values).tobytes())
        else:
            padded = np.zeros((height, plane.line_size), np.uint8)
            padded[:, :width] = values
            plane.update(padded.tobytes())


class _Writer:
    """Encode coloured frames and mux them with the other streams' packets, in order."""

    def __init__(
        self,
        out,
        video_out,
        plans: dict[int, _StreamPlan],
        in_queue: queue.Queue,
        failure: _Failure,
        on_frame: Callable[[], None],
    ) -> None:
        self.out, self.video_out, self.plans, self.queue, self.failure = out, video_out, plans, in_queue, failure
        self.on_frame = on_frame
        self.frames = 0
        self.copied = 0

    def _encode(self, frame: av.VideoFrame | None) -> None:
        for packet in self.video_out.encode(frame):
            self.out.mux(packet)

    def _other(self, packet: av.Packet) -> None:
        plan = self.plans[packet.stream.index]
        if plan.action == "copy":
            packet.stream = plan.output
            self.out.mux(packet)
            self.copied += 1
        elif plan.action == "transcode":
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                return
            for audio in decoded:
                for resampled in plan.resampler.resample(audio):
                    for encoded in plan.output.encode(resampled):
                        self.out.mux(encoded)

    def run(self) -> None:
        try:
            while True:
                batch = _get(self.queue, self.failure)
                if batch is _END:
                    break
                chroma = iter(batch.chroma)
                for item in batch.items:
                    if isinstance(item, _Frame):
                        u, v = next(chroma)
                        frame = item.frame
                        frame.make_writable()
                        _write_planes(frame, u, v)
                        frame.pict_type = av.video.frame.PictureType.NONE
                        self._encode(frame)
                        self.frames += 1
                        self.on_frame()
                    else:
                        self._other(item.packet)
            if self.failure.stop.is_set():
                return
            self._encode(None)
            for plan in self.plans.values():
                if plan.action == "transcode":
                    for resampled in plan.resampler.resample(None):
                        for encoded in plan.output.encode(resampled):
                            self.out.mux(encoded)
                    for encoded in plan.output.encode(None):
                        self.out.mux(encoded)
        except BaseException as error:  # noqa: BLE001
            self.failure.record(error)


def make_chroma_function(colorizer: Colorizer, state: FilmState | None, full_range: bool, matrix: str) -> Callable:
    """A function from a list of yuv420p frames (in film order) to their new (U, V) planes (uint8 NumPy)."""
    pin = colorizer.device.type == "cuda"

    def colorize_chroma(frames: list[av.VideoFrame]) -> list[tuple[np.ndarray, np.ndarray]]:
        height, width = frames[0].height, frames[0].width
        luma = np.stack([_plane_array(f.planes[0], height, width) for f in frames])
        tensor = torch.from_numpy(luma)
        if pin:
            tensor = tensor.pin_memory()
        tensor = tensor.to(colorizer.device, non_blocking=True)
        u, v = chroma_planes(tensor, colorizer, state, full_range=full_range, matrix=matrix)
        u, v = u.cpu().numpy(), v.cpu().numpy()
        return [(u[i], v[i]) for i in range(len(frames))]

    return colorize_chroma


def colorize_video(
    source: Path,
    target: Path,
    colorizer: Colorizer,
    *,
    quiet: bool = False,
    console: Console | None = None,
    options: VideoOptions | None = None,
) -> str:
    """Colorize one film; returns a one-line summary.

    Raises:
        VidcolorError: unreadable input, no video stream, no frames, or a failed write.
    """
    options = options or VideoOptions()
    console = console or Console(stderr=True, soft_wrap=True)
    try:
        inp = av.open(str(source), metadata_errors="ignore")
    except av.error.FFmpegError as error:
        raise VidcolorError(f"{source}: cannot open as a video ({error})") from None
    tmp = target.with_name(f".{target.stem}.partial{target.suffix}")
    out = None
    started = time.perf_counter()
    failure = _Failure()
    restore_interrupt = _stop_on_interrupt(failure)
    try:
        if not inp.streams.video:
            raise VidcolorError(f"{source}: has no video stream")
        film = inp.streams.video[0]
        film.thread_type = "AUTO"
        first = _probe_first_frame(source)
        if first is None:
            raise VidcolorError(f"{source}: holds no decodable video frame")
        try:
            out = av.open(str(tmp), "w")
        except (av.error.FFmpegError, ValueError) as error:
            raise VidcolorError(f"{target}: cannot write here ({error})") from None
        context = film.codec_context
        rate = film.average_rate or film.guessed_rate or 25
        codec = options.codec or VIDEO_DEFAULT.get(out.format.name.split(",")[0], "libx264")
        try:
            video_out = out.add_stream(codec, rate=rate, options=_encoder_options(codec, options.crf, options.preset))
        except (av.error.FFmpegError, ValueError) as error:
            raise VidcolorError(f"--codec {codec}: not available ({error})") from None
        video_out.width, video_out.height = context.width, context.height
        video_out.pix_fmt = "yuv420p"
        video_out.time_base = film.time_base
        video_out.codec_context.time_base = film.time_base
        if film.sample_aspect_ratio:
            video_out.codec_context.sample_aspect_ratio = film.sample_aspect_ratio
        full_range = first.color_range == 2 or first.format.name.startswith("yuvj")
        for name in ("color_primaries", "color_trc", "colorspace"):
            value = getattr(first, name)
            if value not in (None, 2):  # 2 = unspecified
                setattr(video_out.codec_context, name, value)
        video_out.codec_context.color_range = 2 if full_range else 1
        if first.rotation:
            video_out.set_display_rotation(first.rotation)
        video_out.metadata.update(
            {k: v for k, v in film.metadata.items() if k in ("language", "title", "handler_name")}
        )
        notices: list[str] = []
        plans = _plan_streams(inp, out, film, notices)
        matrix = (
            "bt709" if first.colorspace == 1 or (first.colorspace in (None, 2) and context.height >= 720) else "bt601"
        )

        read_queue: queue.Queue = queue.Queue(maxsize=READ_QUEUE_ITEMS)
        batch_queue: queue.Queue = queue.Queue(maxsize=BATCH_QUEUE_BATCHES)
        total = _expected_frames(film, inp)
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]} fps"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=quiet,
            transient=False,
        )
        task = progress.add_task(source.name, total=total, fps="-")
        counter = {"frames": 0}

        def on_frame() -> None:
            counter["frames"] += 1

        reader = _Reader(inp, film, plans, read_queue, failure)
        writer = _Writer(out, video_out, plans, batch_queue, failure, on_frame)
        state = FilmState() if colorizer.decode.temporal else None
        chroma = make_chroma_function(colorizer, state, full_range, matrix)
        threads = [
            threading.Thread(target=reader.run, name="vidcolor-read", daemon=True),
            threading.Thread(
                target=_colour_stage,
                args=(read_queue, batch_queue, chroma, options.batch_size, failure),
                name="vidcolor-colour",
                daemon=True,
            ),
            threading.Thread(target=writer.run, name="vidcolor-write", daemon=True),
        ]
        with progress:
            for thread in threads:
                thread.start()
            try:
                while any(t.is_alive() for t in threads):
                    threads[-1].join(timeout=0.2)
                    elapsed = time.perf_counter() - started
                    progress.update(
                        task,
                        completed=counter["frames"],
                        fps=f"{counter['frames'] / elapsed:.1f}" if elapsed > 0 else "-",
                    )
                    if failure.stop.is_set():
                        break
            except KeyboardInterrupt:
                failure.record(KeyboardInterrupt())
            for thread in threads:
                thread.join(timeout=10)
        if failure.error is not None:
            if isinstance(failure.error, KeyboardInterrupt):
                raise KeyboardInterrupt
            if isinstance(failure.error, VidcolorError):
                raise VidcolorError(f"{source}: {failure.error}") from None
            raise VidcolorError(f"{source}: {type(failure.error).__name__}: {failure.error}") from failure.error
        if writer.frames == 0:
            raise VidcolorError(f"{source}: no video frames could be decoded")
        declared = _declared_seconds(film, inp)
        if declared and reader.last_time is not None and reader.last_time < 0.95 * declared - 0.5:
            raise VidcolorError(
                f"{source}: the film stops at {reader.last_time:.1f} s of {declared:.1f} s (truncated or damaged); "
                f"{target} was not written"
            )
        out.close()
        out = None
        os.replace(tmp, target)
        elapsed = time.perf_counter() - started
        for notice in notices:
            console.print(f"{source}: {notice}", highlight=False)
        events = f"; {state.cuts} scene cut(s)" if state is not None and state.cuts else ""
        if reader.decode_errors or reader.repeated:
            events += (
                f"; {reader.decode_errors} undecodable packet(s), {reader.repeated} frame(s) repeated to keep timing"
            )
        return (
            f"{source} -> {target}: {writer.frames} frames in {elapsed:.1f} s "
            f"({writer.frames / max(elapsed, 1e-9):.1f} fps), {writer.copied} packets of other streams copied{events}"
        )
    finally:
        restore_interrupt()
        inp.close()
        if out is not None:
            try:
                out.close()
            except (av.error.FFmpegError, ValueError, OSError):
                pass
        if tmp.exists():
            tmp.unlink()
