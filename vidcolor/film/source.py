"""The input side of a film: open it, read its colour encoding, and demux + decode it.

:class:`SourceFilm` is an opened film and what vidcolor needs to know about it before the
first frame (its video stream, first decodable frame, colour encoding, expected length).
:class:`FilmReader` demuxes it, decodes the film stream, fills the gaps left by undecodable
packets with a copy of the previous frame at the missing timestamp (so the frame count and
the audio sync are kept), and hands on, in demux order, the frames and the packets of the
other streams that the output keeps.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from vidcolor.errors import VidcolorError

# A film with more undecodable packets than this is given up as damaged.
MAX_DECODE_ERRORS = 1000
# FFmpeg's AVColorRange / AVColorSpace codes that vidcolor reads.
COLOR_RANGE_JPEG = 2  # full range
COLORSPACE_BT709 = 1
UNSPECIFIED = 2
# Films at least this tall with no colour matrix tag are taken as BT.709 (HD), the rest as BT.601.
HD_HEIGHT = 720


@dataclass(frozen=True)
class ColourEncoding:
    """How the film's Y'CbCr relates to RGB: the range, the matrix, and its own colour tags.

    ``tags`` holds the frame's ``color_primaries``, ``color_trc`` and ``colorspace`` codes that
    are specified (FFmpeg's numbering), for the output to carry.
    """

    full_range: bool
    matrix: str  # "bt601" or "bt709"
    tags: dict[str, int]

    @classmethod
    def of_frame(cls, frame: av.VideoFrame) -> ColourEncoding:
        """The encoding a decoded frame declares (untagged frames: BT.709 from 720 lines up)."""
        full_range = frame.color_range == COLOR_RANGE_JPEG or frame.format.name.startswith("yuvj")
        space = frame.colorspace
        hd = space == COLORSPACE_BT709 or (space in (None, UNSPECIFIED) and frame.height >= HD_HEIGHT)
        tags = {
            name: getattr(frame, name)
            for name in ("color_primaries", "color_trc", "colorspace")
            if getattr(frame, name) not in (None, UNSPECIFIED)
        }
        return cls(full_range, "bt709" if hd else "bt601", tags)


def _first_frame(source: Path) -> av.VideoFrame | None:
    """The first decodable frame (for rotation and colour tags), or None when there is none."""
    try:
        with av.open(str(source)) as probe:
            for frame in probe.decode(video=0):
                return frame
    except av.error.FFmpegError:
        return None
    return None


class SourceFilm:
    """An opened film: the container, its (first) video stream and its first decodable frame.

    Raises (from :meth:`open`):
        VidcolorError: the file cannot be opened as a video, has no video stream, or holds no
        decodable frame.
    """

    def __init__(self, path: Path, container: av.container.InputContainer, first: av.VideoFrame) -> None:
        self.path = path
        self.container = container
        self.stream: av.video.stream.VideoStream = container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.first = first
        self.encoding = ColourEncoding.of_frame(first)

    @classmethod
    def open(cls, path: Path) -> SourceFilm:
        try:
            container = av.open(str(path), metadata_errors="ignore")
        except av.error.FFmpegError as error:
            raise VidcolorError(f"{path}: cannot open as a video ({error})") from None
        try:
            if not container.streams.video:
                raise VidcolorError(f"{path}: has no video stream")
            first = _first_frame(path)
            if first is None:
                raise VidcolorError(f"{path}: holds no decodable video frame")
            return cls(path, container, first)
        except BaseException:
            container.close()
            raise

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> SourceFilm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def declared_end(self) -> tuple[float, bool] | None:
        """When the film ends (seconds on its timeline) as the file declares it, and whether that
        is the video stream's own declaration (MP4/MOV stream duration, Matroska/WebM track
        ``DURATION`` tag) rather than the whole container's (which covers every stream); None
        when nothing is declared."""
        start = float((self.stream.start_time or 0) * self.stream.time_base) if self.stream.time_base else 0.0
        if self.stream.duration and self.stream.time_base:
            return start + float(self.stream.duration * self.stream.time_base), True
        tagged = _parse_clock(self.stream.metadata.get("DURATION") or self.stream.metadata.get("duration"))
        if tagged:
            return start + tagged, True
        if self.container.duration:
            return ((self.container.start_time or 0) + self.container.duration) / av.time_base, False
        return None

    @property
    def frame_seconds(self) -> float:
        """The nominal duration of one frame (1 / the average frame rate; 1/25 when unknown)."""
        rate = self.stream.average_rate or self.stream.guessed_rate
        return 1.0 / float(rate) if rate else 1.0 / 25

    @property
    def expected_frames(self) -> int | None:
        """The frame count the container declares or implies (for progress), if any."""
        if self.stream.frames:
            return self.stream.frames
        rate = self.stream.average_rate or self.stream.guessed_rate
        if self.container.duration and rate:
            return int(round(self.container.duration / av.time_base * float(rate)))
        return None


def plane_array(plane: av.video.plane.VideoPlane, height: int, width: int) -> np.ndarray:
    """A frame's plane as a ``(height, width)`` uint8 view (its line padding cut off)."""
    data = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return data[:height, :width]


def to_planar(frame: av.VideoFrame) -> av.VideoFrame:
    """The frame in yuv420p (as it is when it already is)."""
    if frame.format.name in ("yuv420p", "yuvj420p"):
        return frame
    return frame.reformat(format="yuv420p")


def read_rgb_frames(path: Path, max_frames: int) -> tuple[np.ndarray, float]:
    """The first ``max_frames`` frames of a film as ``(T, H, W, 3)`` uint8 RGB, and its frame rate.

    Raises:
        VidcolorError: the file cannot be read as a video.
    """
    frames: list[np.ndarray] = []
    with SourceFilm.open(path) as film:
        rate = 1.0 / film.frame_seconds
        for frame in film.container.decode(film.stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= max_frames:
                break
    return np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8), rate


def _parse_clock(text: str | None) -> float | None:
    """Seconds of an ``HH:MM:SS.fraction`` duration tag, or None."""
    try:
        hours, minutes, seconds = (text or "").split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def packet_end(packet: av.Packet) -> float | None:
    """Where a packet ends on the film's timeline (pts plus duration, seconds); None without a pts."""
    if packet.pts is None or packet.time_base is None:
        return None
    return float((packet.pts + (packet.duration or 0)) * packet.time_base)


def _overshot(packet: av.Packet, start: int) -> bool:
    """Whether a seek meant for the keyframe at or before ``start`` landed after it."""
    stamp = packet.pts if packet.pts is not None else packet.dts
    return stamp is not None and stamp > start


def repeat_at(frame: av.VideoFrame, pts: int) -> av.VideoFrame:
    """A new frame with ``frame``'s pixels and colour tags at timestamp ``pts``."""
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


class FilmReader:
    """Demux and decode a :class:`SourceFilm`, emitting frames and the other streams' packets.

    ``emit`` receives, in demux order, each film frame (an ``av.VideoFrame``, gaps from
    undecodable packets filled) and each packet of another stream for which ``keeps(packet)``
    is true; it returns False to stop reading, as does ``stopped()`` when true.

    Frames go out in strictly increasing timestamps: a frame the decoder delivers late, for a
    slot already filled or passed, is dropped (counted in ``late``), so no timestamp is ever
    written twice. Frames without a time base get the stream's.

    With a ``span`` ``(start, end)`` (timestamps in the film stream's time base, either None for
    open), only the film stream is read: the reader seeks to the keyframe at or before ``start``
    and emits only the frames with ``start <= pts < end`` (gaps inside the span filled as above),
    stopping once a frame at or past ``end`` comes out of the decoder.

    Counts of frames, decode errors, repeated and late frames are kept for the summary, and for
    the truncation test the end (timestamp plus duration, seconds) of the latest frame and of the
    latest packet of any stream.
    """

    def __init__(
        self,
        film: SourceFilm,
        keeps: Callable[[av.Packet], bool],
        emit: Callable[[av.VideoFrame | av.Packet], bool],
        stopped: Callable[[], bool] = lambda: False,
        span: tuple[int | None, int | None] = (None, None),
    ) -> None:
        self.film, self.keeps, self.emit, self.stopped = film, keeps, emit, stopped
        self.start, self.end = span
        self.finished = False  # a frame at or past the span's end came out: nothing more to emit
        self.pending: list[int] = []  # pts of film packets whose frames have not come out yet
        self.previous: av.VideoFrame | None = None
        self.decode_errors = 0
        self.repeated = 0
        self.late = 0
        self.frames = 0
        self.last_pts: int | None = None  # the latest timestamp emitted
        self.video_end: float | None = None  # seconds: where the latest frame ends
        self.content_end: float | None = None  # seconds: where the latest frame or packet of any stream ends

    def _in_span(self, pts: int) -> bool:
        return (self.start is None or pts >= self.start) and (self.end is None or pts < self.end)

    def _emit_frame(self, frame: av.VideoFrame) -> bool:
        if self.finished:
            return True
        if frame.time_base is None:
            frame.time_base = self.film.stream.time_base
        if frame.pts is not None and self.start is not None and frame.pts < self.start:
            self.previous = frame  # before the span: only a stand-in for an undecodable first frame
            return True
        if frame.pts is not None and self.end is not None and frame.pts >= self.end:
            self.finished = True
            while self.pending:
                if not self._repeat(heapq.heappop(self.pending)):
                    return False
            return True
        if frame.pts is not None:
            if self.last_pts is not None and frame.pts <= self.last_pts:
                self.late += 1  # its slot was filled (by a repeat) or passed
                return True
            while self.pending and self.pending[0] < frame.pts:
                if not self._repeat(heapq.heappop(self.pending)):
                    return False
            while self.pending and self.pending[0] == frame.pts:
                heapq.heappop(self.pending)
        return self._send(frame)

    def _send(self, frame: av.VideoFrame) -> bool:
        self.previous = frame
        self.frames += 1
        if frame.pts is not None:
            self.last_pts = frame.pts
            if frame.time_base is not None:
                length = float(frame.duration * frame.time_base) if frame.duration else self.film.frame_seconds
                end = float(frame.pts * frame.time_base) + length
                self.video_end = max(self.video_end or end, end)
                self.content_end = max(self.content_end or end, end)
        return self.emit(frame)

    def _note_packet(self, packet: av.Packet) -> None:
        end = packet_end(packet)
        if end is not None:
            self.content_end = max(self.content_end or end, end)

    def _repeat(self, pts: int) -> bool:
        """Stand in for the undecodable frame at ``pts`` with a copy of the previous one."""
        if self.previous is None or (self.last_pts is not None and pts <= self.last_pts):
            return True  # nothing decoded yet to stand in for it, or its slot has passed
        self.repeated += 1
        return self._send(repeat_at(self.previous, pts))

    def _decode(self, packet: av.Packet | None) -> bool:
        try:
            frames = self.film.stream.decode(packet)
        except av.error.InvalidDataError:
            self.decode_errors += 1
            return True
        except av.error.FFmpegError as error:
            if packet is None:
                return True
            self.decode_errors += 1
            if self.decode_errors > MAX_DECODE_ERRORS:
                raise VidcolorError(f"too many undecodable frames ({error})") from None
            return True
        return all(self._emit_frame(frame) for frame in frames)

    def _packets(self) -> Iterator[av.Packet]:
        """The packets to read: all streams' from the start, or the film stream's from the
        keyframe at or before the span's start."""
        container = self.film.container
        if self.start is None and self.end is None:
            yield from container.demux()
            return
        stream = self.film.stream
        if self.start is not None:
            container.seek(self.start, stream=stream, backward=True, any_frame=False)
        packets = container.demux(stream)
        first = next(packets, None)
        if first is not None and self.start is not None and _overshot(first, self.start):
            container.seek(container.start_time or 0, backward=True)  # the index lied: read from the top
            packets = container.demux(stream)
            first = next(packets, None)
        if first is not None:
            yield first
            yield from packets

    def read(self) -> bool:
        """Read the whole film (or its span); returns False when ``emit`` asked to stop.

        Raises:
            VidcolorError: the container became unreadable, or too many packets were undecodable.
        """
        film_index = self.film.stream.index
        try:
            for packet in self._packets():
                if self.stopped():
                    return False
                self._note_packet(packet)
                if packet.stream.index == film_index:
                    if packet.size and packet.pts is not None and self._in_span(packet.pts):
                        heapq.heappush(self.pending, packet.pts)
                    if not self._decode(packet if packet.size else None):
                        return False
                    if self.finished:
                        break
                elif self.keeps(packet) and not self.emit(packet):
                    return False
            else:
                self._decode(None)
        except av.error.FFmpegError as error:
            raise VidcolorError(f"unreadable at {self.frames} frames: {error}") from None
        for pts in sorted(self.pending):
            if not self._repeat(pts):
                return False
        self.pending.clear()
        return True
