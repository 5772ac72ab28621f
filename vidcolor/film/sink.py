"""The output side of a film: the colour video stream, each other stream's fate, mux, flush,
and the check that the written film is whole.

A :class:`FrameSink` is where the pipeline's write stage puts frames: the final
:class:`FilmOutput`, or a run of segments (:class:`~vidcolor.film.segments.SegmentWriter`).

:class:`FilmOutput` writes to a hidden partial file beside the target (:mod:`vidcolor.partial`)
and renames it over the target only in :meth:`FilmOutput.close`; :meth:`FilmOutput.discard`
removes it, so a failed or interrupted run leaves nothing under the target. Every failure to
write (a full disk, a read-only folder) is an :class:`~vidcolor.errors.OutputError` naming the
target. Every input stream other than the
film gets one :class:`OtherStream`, which says, in one place, whether it is copied packet for
packet, transcoded (audio the container cannot hold as is) or dropped, and does it.
"""

from __future__ import annotations

import contextlib
import enum
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np

from vidcolor.errors import OutputError, TruncatedFilmError, VidcolorError
from vidcolor.film.source import SourceFilm
from vidcolor.partial import claim_partial, remove_partial

# Containers that only accept their own family of codecs, and the encoders to use there.
AUDIO_FALLBACK = {"webm": "libopus", "ogg": "libopus"}
# AVI holds no presentation timestamps and FFmpeg's AVI reader shows an H.264 stream one frame
# late even without B-frames; MJPEG (intra only, no delay) keeps every frame at its time.
VIDEO_DEFAULT = {"webm": "libvpx-vp9", "ogg": "libtheora", "avi": "mjpeg"}
DEFAULT_VIDEO_CODEC = "libx264"
DEFAULT_AUDIO_CODEC = "aac"
STANDARD_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 6: "5.1", 8: "7.1"}
# The header-only probe accepts some codecs that the MP4/MOV muxers then refuse at the trailer
# (e.g. PCM with an unspecified channel layout): there, copy only these audio codecs.
MP4_AUDIO_COPY = {"aac", "mp3", "mp2", "ac3", "eac3", "opus", "alac", "flac"}
KEPT_TYPES = ("audio", "subtitle", "data", "video", "attachment")
FF_QP2LAMBDA = 118  # FFmpeg's quantiser-to-lambda factor (global_quality is a lambda)
# libvpx's CRF scale is 0..63 where x264's is 0..51: shift so that the same --crf looks alike.
VPX_CRF_OFFSET = 13
COLOR_RANGE_MPEG, COLOR_RANGE_JPEG = 1, 2
# 4:2:0 needs an even width and height in libx264/libx265/libvpx; odd sizes are kept in 4:4:4.
EVEN_PIXEL_FORMAT, ODD_PIXEL_FORMAT = "yuv420p", "yuv444p"
# FFmpeg's AVFieldOrder codes of interlaced video: top field first (coded and displayed, or coded
# bottom first), bottom field first.
FIELD_TT, FIELD_BB, FIELD_TB, FIELD_BT = 2, 3, 4, 5
INTERLACED_ORDERS = (FIELD_TT, FIELD_BB, FIELD_TB, FIELD_BT)
# A film is truncated when its frames end more than this many frames before the video's own
# declared end (1.5: one frame of rounding is allowed, two missing frames are not), or, where
# only the whole container's length is declared, when no stream reaches that far (a film whose
# audio outlasts its pictures is whole).
MISSING_FRAMES_ALLOWED = 1.5


@dataclass(frozen=True)
class EncoderSettings:
    """The colour video's encoder: codec (None: the container's usual one), CRF and preset."""

    codec: str | None = None  # None: libx264, or libvpx-vp9 for WebM
    crf: int = 18
    preset: str = "medium"


class FrameSink(Protocol):
    """Where the write stage puts coloured frames and other streams' packets; closed (``ends``:
    where the latest frame, and the latest packet of any stream, end, in seconds) when the
    pipeline is through, discarded (no-op after a close) in any case."""

    frames: int
    warmup: int

    def keeps(self, packet: av.Packet) -> bool: ...

    def write_frame(self, frame: av.VideoFrame, u: np.ndarray, v: np.ndarray) -> None: ...

    def write_packet(self, packet: av.Packet) -> None: ...

    def close(self, ends: tuple[float | None, float | None]) -> None: ...

    def discard(self) -> None: ...


SinkOpener = Callable[[SourceFilm], FrameSink]  # opens a span's sink on the opened source film


def encoder_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    """FFmpeg options of the video encoder ``codec`` for a quality ``crf`` and speed ``preset``."""
    if codec in ("libx264", "libx265"):
        return {"crf": str(crf), "preset": preset}
    if codec.startswith("libvpx"):
        return {"crf": str(crf + VPX_CRF_OFFSET), "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"}
    if codec == "mjpeg":  # a fixed JPEG quantiser: q 2 (best) .. 31; --crf 18 gives q 3
        q = min(31, max(2, round(3 + (crf - 18) / 4)))
        # limited-range 4:2:0 (the source's own luma codes) is "unofficial" JPEG, which FFmpeg reads
        return {"flags": "+qscale", "global_quality": str(q * FF_QP2LAMBDA), "strict": "unofficial"}
    return {}


def _family(container: av.container.OutputContainer) -> str:
    """The container format's first name (``"mov,mp4,..."`` -> ``"mov"``)."""
    return container.format.name.split(",")[0]


def _container_accepts(container: av.container.OutputContainer, stream: av.stream.Stream) -> bool:
    """Whether ``container``'s format can hold ``stream``'s codec as is (a header is written in memory)."""
    if (
        stream.type == "audio"
        and _family(container) in ("mov", "mp4")
        and stream.codec_context.codec.canonical_name not in MP4_AUDIO_COPY
    ):
        return False
    try:
        with av.open(io.BytesIO(), "w", format=container.format.name) as probe:
            probe.add_stream_from_template(stream)
            probe.start_encoding()
        return True
    except (av.error.FFmpegError, ValueError, TypeError, NotImplementedError):
        return False


def describe(stream: av.stream.Stream) -> str:
    """``"audio stream #1 (aac, eng)"``: a stream as notices name it."""
    name = stream.codec_context.name if stream.codec_context else "unknown"
    language = stream.metadata.get("language")
    return f"{stream.type} stream #{stream.index} ({name}{', ' + language if language else ''})"


class StreamFate(enum.Enum):
    """What becomes of a non-film input stream."""

    COPY = "copy"
    TRANSCODE = "transcode"
    DROP = "drop"


@dataclass
class OtherStream:
    """One non-film input stream's fate in the output, and the means to carry it out."""

    fate: StreamFate
    output: av.stream.Stream | None = None
    resampler: av.AudioResampler | None = None

    def write(self, container: av.container.OutputContainer, packet: av.Packet) -> int:
        """Carry ``packet`` into ``container``; returns the number of packets copied as is (0 or 1)."""
        if self.fate is StreamFate.COPY:
            packet.stream = self.output
            container.mux(packet)
            return 1
        if self.fate is StreamFate.TRANSCODE:
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                return 0  # an undecodable audio packet: a short gap, as a player would give
            for audio in decoded:
                self._encode(container, self.resampler.resample(audio))
        return 0

    def flush(self, container: av.container.OutputContainer) -> None:
        """Drain the resampler and encoder of a transcoded stream (nothing for the others)."""
        if self.fate is StreamFate.TRANSCODE:
            self._encode(container, self.resampler.resample(None))
            container.mux(self.output.encode(None))

    def _encode(self, container: av.container.OutputContainer, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            container.mux(self.output.encode(frame))


def plan_other_streams(
    source: SourceFilm, container: av.container.OutputContainer, notices: list[str]
) -> dict[int, OtherStream]:
    """Each non-film stream of ``source`` keyed by index, with output streams added to ``container``.

    Streams the container holds as they are are copied; audio it cannot hold is transcoded (to
    AAC, or Opus in WebM/Ogg); anything else it cannot hold is dropped. Every transcode and drop
    adds a line to ``notices``.
    """
    fates: dict[int, OtherStream] = {}
    for stream in source.container.streams:
        if stream.index == source.stream.index:
            continue
        if stream.type not in KEPT_TYPES:
            notices.append(f"dropped {describe(stream)}: unsupported stream type")
            fates[stream.index] = OtherStream(StreamFate.DROP)
        elif _container_accepts(container, stream):
            output = container.add_stream_from_template(stream)
            output.metadata.update(stream.metadata)
            fates[stream.index] = OtherStream(StreamFate.COPY, output)
        elif stream.type == "audio":
            fates[stream.index] = _audio_transcode(stream, container)
            notices.append(
                f"transcoded {describe(stream)} to {fates[stream.index].output.codec_context.name}: "
                f"{container.format.name} cannot hold it"
            )
        else:
            notices.append(f"dropped {describe(stream)}: the {container.format.name} container cannot hold it")
            fates[stream.index] = OtherStream(StreamFate.DROP)
    return fates


def _audio_transcode(stream: av.audio.stream.AudioStream, container: av.container.OutputContainer) -> OtherStream:
    encoder = AUDIO_FALLBACK.get(_family(container), DEFAULT_AUDIO_CODEC)
    output = container.add_stream(encoder, rate=stream.codec_context.sample_rate or 48000)
    channels = stream.codec_context.layout.nb_channels or 2
    output.layout = STANDARD_LAYOUTS.get(channels, "stereo")
    output.metadata.update(stream.metadata)
    resampler = av.AudioResampler(
        format=output.codec_context.codec.audio_formats[0].name,
        layout=output.layout,
        rate=output.rate,
        frame_size=960 if encoder == "libopus" else 1024,
    )
    return OtherStream(StreamFate.TRANSCODE, output, resampler)


def _replace_chroma(frame: av.VideoFrame, u: np.ndarray, v: np.ndarray) -> None:
    """Write ``(h/2, w/2)`` uint8 U and V planes into a yuv420p ``frame`` (row padding kept)."""
    frame.make_writable()
    for plane, values in ((frame.planes[1], u), (frame.planes[2], v)):
        height, width = values.shape
        if plane.line_size == width:
            plane.update(np.ascontiguousarray(values).tobytes())
        else:
            padded = np.zeros((height, plane.line_size), np.uint8)
            padded[:, :width] = values
            plane.update(padded.tobytes())


def is_avi(container: av.container.OutputContainer) -> bool:
    """Whether ``container`` is AVI, which counts frames at its frame rate and keeps no timestamps."""
    return "avi" in container.format.name.split(",")


def video_codec(container: av.container.OutputContainer, codec: str | None) -> str:
    """The colour video's encoder: ``codec``, or the container's usual one (libx264; VP9 in WebM)."""
    return codec or VIDEO_DEFAULT.get(_family(container), DEFAULT_VIDEO_CODEC)


def add_colour_video(
    container: av.container.OutputContainer,
    source: SourceFilm,
    encoder: EncoderSettings,
    notices: list[str],
) -> av.video.stream.VideoStream:
    """Add the colour video stream to ``container``: the source film's size (odd sizes in 4:4:4,
    with a line in ``notices``), time base, aspect ratio, colour range and tags, field order,
    display rotation and language/title; ``encoder``'s codec (None: :func:`video_codec`), CRF and
    preset, without B-frames in AVI (which cannot reorder them without shifting the timestamps).

    Raises:
        VidcolorError: the codec is not available.
    """
    codec = video_codec(container, encoder.codec)
    film = source.stream
    rate = film.average_rate or film.guessed_rate or 25
    try:
        video = container.add_stream(codec, rate=rate, options=encoder_options(codec, encoder.crf, encoder.preset))
    except (av.error.FFmpegError, ValueError) as error:
        raise VidcolorError(f"--codec {codec}: not available ({error})") from None
    video.width, video.height = film.codec_context.width, film.codec_context.height
    if is_avi(container):
        # AVI holds no presentation timestamps: an encoder's B-frame delay would shift every frame
        video.codec_context.max_b_frames = 0
    odd = video.width % 2 or video.height % 2
    video.pix_fmt = ODD_PIXEL_FORMAT if odd else EVEN_PIXEL_FORMAT
    if odd:
        notices.append(
            f"{video.width}x{video.height} has an odd side, which 4:2:0 video cannot hold: written as "
            f"{ODD_PIXEL_FORMAT} (4:4:4) at the same size; some players show only 4:2:0"
        )
    # AVI counts frames (its time base is the frame rate): a finer one leaves FFmpeg's muxer to round
    # it to another rate (1/12288 came out as 600 fps)
    video.time_base = 1 / Fraction(film.guessed_rate or rate) if is_avi(container) else film.time_base
    video.codec_context.time_base = video.time_base
    if film.sample_aspect_ratio:
        video.codec_context.sample_aspect_ratio = film.sample_aspect_ratio
    for name, value in source.encoding.tags.items():
        setattr(video.codec_context, name, value)
    video.codec_context.color_range = COLOR_RANGE_JPEG if source.encoding.full_range else COLOR_RANGE_MPEG
    order = film.codec_context.field_order
    if order in INTERLACED_ORDERS or source.first.interlaced_frame:
        _keep_interlacing(video, codec, order if order in INTERLACED_ORDERS else FIELD_TT)
    if source.first.rotation:
        video.set_display_rotation(source.first.rotation)
    video.metadata.update({k: v for k, v in film.metadata.items() if k in ("language", "title", "handler_name")})
    return video


def _keep_interlacing(video: av.video.stream.VideoStream, codec: str, order: int) -> None:
    """Code interlaced frames as interlaced, in the source's field order (an AVFieldOrder code)."""
    video.codec_context.field_order = order
    if codec in ("libx264", "libx265"):
        top_first = order in (FIELD_TT, FIELD_TB)
        options = dict(video.codec_context.options)
        options["flags"] = "+ildct+ilme"
        options["x264-params" if codec == "libx264" else "x265-params"] = "tff=1" if top_first else "bff=1"
        video.codec_context.options = options


def colour_frame(frame: av.VideoFrame, u: np.ndarray, v: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """A yuv420p source ``frame`` with its chroma replaced by ``u``, ``v`` (uint8, half size),
    in ``pix_fmt``, ready for the encoder (frame type left to it)."""
    _replace_chroma(frame, u, v)
    if pix_fmt != EVEN_PIXEL_FORMAT:
        frame = frame.reformat(format=pix_fmt)
    frame.pict_type = av.video.frame.PictureType.NONE  # let the encoder choose the frame types
    return frame


class FilmOutput:
    """The colour film being written: its video stream, the other streams' fates, the temporary file.

    The video stream takes the source's size (odd sizes in 4:4:4, with a notice), time base,
    aspect ratio, colour range and tags, field order, display rotation and language/title;
    ``encoder.codec`` None means libx264 (libvpx-vp9 in WebM). :meth:`close` checks that the
    film is whole (``accept_truncated``: a notice instead of an error) and moves it onto the target.

    Raises (from the constructor):
        OutputError: the target cannot be written.
        VidcolorError: the codec is not available.
    """

    warmup = 0  # a sink of its own: every frame is written

    def __init__(
        self, target: Path, source: SourceFilm, encoder: EncoderSettings, accept_truncated: bool = False
    ) -> None:
        self.target = target
        self.source = source
        self.accept_truncated = accept_truncated
        self.frames = 0
        self.copied = 0
        self.container: av.container.OutputContainer | None = None
        self.counts_frames = False  # AVI: frames are counted, not timed
        try:
            self.partial, self.notices = claim_partial(target)
            self.container = av.open(str(self.partial), "w")
        except (OSError, av.error.FFmpegError, ValueError) as error:
            raise OutputError(target, error) from None
        try:
            self.video = add_colour_video(self.container, source, encoder, self.notices)
            self.others = plan_other_streams(source, self.container, self.notices)
            self.counts_frames = is_avi(self.container)
        except BaseException:
            self.discard()
            raise

    def keeps(self, packet: av.Packet) -> bool:
        """Whether a packet of another stream goes to the output (not empty, its stream not dropped).

        AVI holds no start trim: a copied packet that ends before the film starts (AAC's priming,
        which MP4 hides with an edit list) is left out there, or FFmpeg would shift every later
        packet by its length (0.064 s for AAC at 16 kHz).
        """
        other = self.others.get(packet.stream.index)
        if packet.size == 0 or other is None or other.fate is StreamFate.DROP:
            return False
        return not (self.counts_frames and packet.pts is not None and packet.pts + packet.duration <= 0)

    def write_frame(self, frame: av.VideoFrame, u: np.ndarray, v: np.ndarray) -> None:
        """Encode a yuv420p source ``frame`` with its chroma replaced by ``u``, ``v`` (uint8, half size).

        Raises:
            OutputError: the file could not be written (e.g. the disk is full).
        """
        frame = colour_frame(frame, u, v, self.video.pix_fmt)
        with self._writing():
            self.container.mux(self.video.encode(frame))
        self.frames += 1

    def write_video_packet(self, packet: av.Packet) -> None:
        """Mux an already encoded packet of the colour video (from a segment, same encoder settings).

        Raises:
            OutputError: the file could not be written.
        """
        packet.stream = self.video
        with self._writing():
            self.container.mux(packet)
        self.frames += 1

    def write_packet(self, packet: av.Packet) -> None:
        """Carry a packet of another stream (one :meth:`keeps` accepted) into the output.

        Raises:
            OutputError: the file could not be written.
        """
        with self._writing():
            self.copied += self.others[packet.stream.index].write(self.container, packet)

    def close(self, ends: tuple[float | None, float | None]) -> None:
        """Check that the film is whole (:func:`check_complete`), flush every encoder, close the
        file and move it onto the target. ``ends``: where the latest frame, and the latest packet
        of any stream, end (seconds).

        Raises:
            VidcolorError: no frame was written; TruncatedFilmError: the frames end short of the
            film's declared length (unless ``accept_truncated``).
            OutputError: the file could not be written (FFmpeg buffers, so a full disk often
            shows only here, at the trailer).
        """
        check_complete(self.source, self.frames, ends, self.target, self.notices, self.accept_truncated)
        with self._writing():
            self.container.mux(self.video.encode(None))
            for other in self.others.values():
                other.flush(self.container)
            container, self.container = self.container, None
            container.close()
            os.replace(self.partial, self.target)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn the write errors of FFmpeg and the file system into an :class:`OutputError`."""
        try:
            yield
        except (OSError, av.error.FFmpegError) as error:
            if isinstance(error, av.error.FFmpegError) and not isinstance(error, OSError):
                raise VidcolorError(f"{self.target}: the encoder or muxer failed ({error})") from None
            raise OutputError(self.target, error) from None

    def discard(self) -> None:
        """Close and remove the temporary file (nothing to do after :meth:`close`)."""
        if self.container is not None:
            try:
                self.container.close()
            except (av.error.FFmpegError, ValueError, OSError):
                pass
            self.container = None
        remove_partial(self.partial)


def check_complete(
    film: SourceFilm,
    frames: int,
    ends: tuple[float | None, float | None],
    target: Path,
    notices: list[str],
    accept_truncated: bool,
) -> None:
    """Raise :class:`VidcolorError` if no frame was written or the film's frames end short of its
    declared length (with ``accept_truncated``, add a line to ``notices`` saying what is missing
    instead). ``ends``: where the latest frame, and the latest packet of any stream, end (seconds).
    """
    if frames == 0:
        raise VidcolorError(f"{film.path}: no video frames could be decoded")
    if film.declared_end is None:
        return
    declared_end, own = film.declared_end
    video_end, content_end = ends
    end = video_end if own else content_end
    if end is None or declared_end - end <= MISSING_FRAMES_ALLOWED * film.frame_seconds:
        return
    missing = declared_end - end
    what = (
        f"the film ends at {end:.2f} s of the {declared_end:.2f} s it declares: "
        f"{missing:.2f} s (about {round(missing / film.frame_seconds)} frames) missing"
    )
    if not accept_truncated:
        raise TruncatedFilmError(
            f"{film.path}: {what} (truncated or damaged); {target} was not written "
            "(--accept-truncated colorizes what there is)"
        )
    notices.append(f"{what}; colorized what there is (--accept-truncated)")
