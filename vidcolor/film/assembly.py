"""The final film from its segment files: the colour video's packets, one decode order, and the
source's other streams copied as a one-pass run copies them.

Each segment was encoded on its own, so its decode timestamps start before its first frame
(B-frames) and would run back into the previous segment's. The packets are given one decode
order for the whole film instead (:func:`film_decode_times`); the presentation timestamps, the
frames and the payloads are the segments' own.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import av

from vidcolor.film.journal import Journal, read_segment
from vidcolor.film.segments import EncodedPacket
from vidcolor.film.sink import FilmOutput
from vidcolor.film.source import SourceFilm, packet_end


def film_decode_times(
    segments: Iterable[list[EncodedPacket]], delay: int, step: int
) -> Iterator[tuple[EncodedPacket, int]]:
    """Each packet of the segments (in order) with a decode timestamp valid for the whole film.

    The ``g``-th packet of the film gets the ``(g - delay)``-th smallest pts of the film, and the
    first ``delay`` packets ``step`` ticks apart before the first pts: strictly increasing, and
    never after the packet's own pts when no segment reorders by more than ``delay``
    (:func:`~vidcolor.film.segments.reorder_delay`). Segments must follow one another in pts.
    """
    history: deque[int] = deque(maxlen=delay)  # the film's largest pts so far, in order
    seen = 0
    first: int | None = None
    for packets in segments:
        ordered = sorted(p.pts for p in packets)
        if first is None and ordered:
            first = ordered[0]
        for i, packet in enumerate(packets):
            back = i - delay
            if back >= 0:
                yield packet, ordered[back]
            elif seen + back >= 0:
                yield packet, history[back]
            else:
                yield packet, first - (-(seen + back)) * step
        history.extend(ordered)
        seen += len(ordered)


@dataclass
class Assembly:
    """What assembling wrote: colour frames, packets of other streams copied, and where the
    latest frame and the latest packet of any stream end (seconds, for the truncation test)."""

    frames: int
    copied: int
    video_end: float | None
    content_end: float | None


def _video_packets(journal: Journal, film: SourceFilm) -> Iterator[tuple[float, int, av.Packet]]:
    time_base = film.stream.time_base
    step = max(1, round(film.frame_seconds / time_base))
    delay = max((e.delay for e in journal.done.values()), default=0)
    segments = (list(read_segment(journal.segment_path(s.index))) for s in journal.plan)
    for n, (encoded, dts) in enumerate(film_decode_times(segments, delay, step)):
        packet = av.Packet(encoded.payload)
        packet.pts, packet.dts, packet.duration = encoded.pts, dts, encoded.duration
        packet.time_base = time_base
        packet.is_keyframe = encoded.keyframe
        yield float(dts * time_base), n, packet


def _other_packets(film: SourceFilm) -> Iterator[tuple[float, int, av.Packet]]:
    """The source's packets of every stream but the film, in demux order, keyed by decode time
    (seconds; a packet without a timestamp takes the previous packet's)."""
    streams = [s for s in film.container.streams if s.index != film.stream.index]
    if not streams:
        return
    last = 0.0
    for n, packet in enumerate(film.container.demux(streams)):
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is not None and packet.time_base is not None:
            last = float(stamp * packet.time_base)
        yield last, n, packet


def assemble(film: SourceFilm, journal: Journal, output: FilmOutput) -> Assembly:
    """Write every finished segment of ``journal`` (all of the plan) and the other streams of
    ``film`` (opened fresh, not read yet) into ``output``, interleaved by time; the caller
    closes or discards ``output``.

    Raises:
        OutputError: the output could not be written.
        VidcolorError: a segment file is damaged.
    """
    copied_before = output.copied
    video_end = max((e.video_end for e in journal.done.values() if e.video_end is not None), default=None)
    content_end = video_end
    video = ((key, 0, n, packet) for key, n, packet in _video_packets(journal, film))
    others = ((key, 1, n, packet) for key, n, packet in _other_packets(film))
    for _, kind, _, packet in heapq.merge(video, others, key=lambda item: item[:3]):
        if kind == 0:
            output.write_video_packet(packet)
            continue
        end = packet_end(packet)
        if end is not None:
            content_end = end if content_end is None else max(content_end, end)
        if output.keeps(packet):
            output.write_packet(packet)
    return Assembly(output.frames, output.copied - copied_before, video_end, content_end)
