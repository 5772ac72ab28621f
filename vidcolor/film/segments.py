"""A film cut into segments at keyframes, and the encoded colour video of each segment.

A long film is colorized as segments that each start at a keyframe (about every
``segment_seconds``), found from the packets of the film stream without decoding. Each
segment's colour video is encoded on its own (so it starts with a keyframe of its own) and kept
as a *segment file* (:mod:`vidcolor.film.journal`). The final film is assembled from the
segment files (:mod:`vidcolor.film.assembly`).

A segment other than the first starts with a *warm-up*: the frames just before it are
colorized but not written, so that the film's temporal state enters the segment as a one-pass
run would have it (the blend forgets its start at least as fast as 0.5 per frame).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidcolor.errors import VidcolorError
from vidcolor.film.sink import EncoderSettings, FrameSink, SinkOpener, add_colour_video, colour_frame
from vidcolor.film.source import SourceFilm

# Frames colorized (not written) before a segment: the blend weight is at most 0.5 per frame,
# so what came before the warm-up weighs at most 0.5 ** 16 (1.5e-5) in the first written frame.
WARMUP_FRAMES = 16


@dataclass(frozen=True)
class Segment:
    """One segment of a film; timestamps in the film stream's time base.

    ``start``: the pts of its first frame, a keyframe (None for the first segment: from the film's
    start); ``end``: the next segment's start (None for the last); ``warmup``: where its warm-up
    begins (None: no warm-up).
    """

    index: int
    start: int | None
    end: int | None
    warmup: int | None

    @property
    def read_from(self) -> int | None:
        """The first pts to colorize: the warm-up's start, else the segment's."""
        return self.warmup if self.warmup is not None else self.start

    def holds(self, pts: int | None) -> bool:
        """Whether a frame at ``pts`` is written in this segment (pts None: yes)."""
        if pts is None:
            return True
        return (self.start is None or pts >= self.start) and (self.end is None or pts < self.end)

    def to_json(self) -> list[int | None]:
        return [self.index, self.start, self.end, self.warmup]

    @classmethod
    def from_json(cls, values: list[int | None]) -> Segment:
        index, start, end, warmup = values
        return cls(int(index), start, end, warmup)


WHOLE_FILM = Segment(0, None, None, None)  # a film of one segment: from its start to its end


def choose_boundaries(keyframes: Iterable[int], ticks_per_segment: int) -> list[int]:
    """Segment starts: from the keyframe pts given (in decode order), the first one at least
    ``ticks_per_segment`` after the film's first keyframe, then each first one at least that far
    after the previous start. Returns the starts after the first segment, increasing."""
    starts: list[int] = []
    origin: int | None = None
    for pts in keyframes:
        if origin is None:
            origin = pts
            continue
        if pts - (starts[-1] if starts else origin) >= ticks_per_segment:
            starts.append(pts)
    return starts


def plan_segments(path: Path, seconds: float, warmup_frames: int = WARMUP_FRAMES) -> list[Segment]:
    """The segments of the film at ``path`` (one when it is shorter than two segments or has too
    few keyframes), from a scan of its film stream's packets (no decoding).

    Raises:
        VidcolorError: the film cannot be read.
    """
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            time_base = stream.time_base or Fraction(1, 90000)
            rate = stream.average_rate or stream.guessed_rate or 25
            keyframes = (p.pts for p in container.demux(stream) if p.is_keyframe and p.pts is not None and p.size)
            starts = choose_boundaries(keyframes, max(1, round(seconds / time_base)))
    except (av.error.FFmpegError, IndexError) as error:
        raise VidcolorError(f"{path}: cannot plan segments ({error})") from None
    frame_ticks = max(1, round(1 / (rate * time_base)))
    bounds: list[int | None] = [None, *starts, None]
    return [
        Segment(i, bounds[i], bounds[i + 1], None if i == 0 else bounds[i] - warmup_frames * frame_ticks)
        for i in range(len(bounds) - 1)
    ]


def runs_of(segments: list[Segment]) -> list[list[Segment]]:
    """``segments`` (in film order) split into runs of consecutive indices."""
    runs: list[list[Segment]] = []
    for segment in segments:
        if runs and runs[-1][-1].index == segment.index - 1:
            runs[-1].append(segment)
        else:
            runs.append([segment])
    return runs


@dataclass(frozen=True)
class EncodedPacket:
    """One packet of the colour video: timestamps in the film's time base (None unknown)."""

    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool
    payload: bytes

    @classmethod
    def of(cls, packet: av.Packet) -> EncodedPacket:
        return cls(packet.pts, packet.dts, packet.duration or 0, bool(packet.is_keyframe), bytes(packet))


def reorder_delay(pts: list[int]) -> int:
    """How many packets the decode order runs ahead of the presentation order at most: the
    smallest ``d`` such that the ``i``-th packet's pts is never below the ``(i - d)``-th smallest
    pts (0 without B-frames)."""
    rank = {value: i for i, value in enumerate(sorted(pts))}
    return max((i - rank[value] for i, value in enumerate(pts)), default=0)


@dataclass
class SegmentResult:
    """A finished segment: its packets, frames written and where its last frame ends (seconds)."""

    segment: Segment
    packets: list[EncodedPacket]
    frames: int
    video_end: float | None

    @property
    def delay(self) -> int:
        return reorder_delay([p.pts for p in self.packets if p.pts is not None])


class SegmentEncoder:
    """Encodes one segment's colour frames exactly as the whole film's encoder is set up
    (:func:`~vidcolor.film.sink.add_colour_video`, in an unwritten container of the target's
    format, so that header flags match), keeping the packets in memory."""

    def __init__(self, target: Path, source: SourceFilm, encoder: EncoderSettings) -> None:
        probe = io.BytesIO()
        probe.name = target.name  # the format is guessed from the name, as for the real output
        self._container = av.open(probe, "w")
        self.video = add_colour_video(self._container, source, encoder, [])
        self.packets: list[EncodedPacket] = []

    def encode(self, frame: av.VideoFrame, u: np.ndarray, v: np.ndarray) -> None:
        coloured = colour_frame(frame, u, v, self.video.pix_fmt)
        self.packets.extend(EncodedPacket.of(p) for p in self.video.encode(coloured))

    def finish(self) -> list[EncodedPacket]:
        """Flush the encoder; returns every packet of the segment, in decode order."""
        self.packets.extend(EncodedPacket.of(p) for p in self.video.encode(None))
        return self.packets


@dataclass
class SegmentWriter:
    """The write stage of a run over consecutive segments: frames before the first segment are
    its warm-up (counted, not written); each segment is encoded by a fresh encoder and handed to
    ``finished`` as soon as the first frame past its end arrives (or the run is closed).

    Its ``keeps`` accepts no packet of other streams: they are copied at assembly.
    """

    segments: list[Segment]
    new_encoder: Callable[[], SegmentEncoder]
    finished: Callable[[SegmentResult], None]
    frame_seconds: float
    frames: int = 0
    warmup: int = 0
    _next: int = 0
    _encoder: SegmentEncoder | None = None
    _segment_frames: int = 0
    _video_end: float | None = None

    def keeps(self, packet: av.Packet) -> bool:
        return False

    def write_packet(self, packet: av.Packet) -> None:
        raise VidcolorError("a segment holds only the colour video")

    def write_frame(self, frame: av.VideoFrame, u: np.ndarray, v: np.ndarray) -> None:
        if self._next == 0 and self._encoder is None:
            first = self.segments[0]
            if frame.pts is not None and first.start is not None and frame.pts < first.start:
                self.warmup += 1
                return
        while self._encoder is None or not self.segments[self._next - 1].holds(frame.pts):
            if self._next >= len(self.segments):
                return  # past the last segment (the reader stops there; a late straggler)
            self._close()
            self._encoder = self.new_encoder()
            self._next += 1
        self._encoder.encode(frame, u, v)
        self.frames += 1
        self._segment_frames += 1
        if frame.pts is not None and frame.time_base is not None:
            length = float(frame.duration * frame.time_base) if frame.duration else self.frame_seconds
            self._video_end = float(frame.pts * frame.time_base) + length

    def _close(self) -> None:
        if self._encoder is None:
            return
        segment = self.segments[self._next - 1]
        self.finished(SegmentResult(segment, self._encoder.finish(), self._segment_frames, self._video_end))
        self._encoder, self._segment_frames = None, 0

    def close(self, ends: tuple[float | None, float | None]) -> None:
        """Close the open segment, and hand on any segment of the run that got no frame (the
        film's completeness is checked when it is assembled, so ``ends`` is not needed)."""
        self._close()
        while self._next < len(self.segments):
            self.finished(SegmentResult(self.segments[self._next], [], 0, None))
            self._next += 1

    def discard(self) -> None:
        """After a failure: the segments handed on so far stay; the open one is dropped."""


def segment_sink(
    target: Path, encoder: EncoderSettings, span: list[Segment], finished: Callable[[SegmentResult], None]
) -> SinkOpener:
    """The sink of a run of segments: a :class:`SegmentWriter` on the opened film, each segment
    encoded as ``target``'s film would be and handed to ``finished`` when done."""

    def open_writer(film: SourceFilm) -> FrameSink:
        return SegmentWriter(span, lambda: SegmentEncoder(target, film, encoder), finished, film.frame_seconds)

    return open_writer
