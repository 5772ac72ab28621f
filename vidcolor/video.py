"""Film mode: a streaming PyAV pipeline that colorizes the video and keeps every other stream.

Three threads joined by bounded queues overlap the work:

    read (demux + threaded decode, :class:`~vidcolor.film_input.FilmReader`)
        -> colour (batch luma -> network -> chroma, on the device)
        -> write (encode + mux, packets of the other streams copied in demux order,
           :class:`~vidcolor.film_output.FilmOutput`)

Each output frame is the decoded source frame itself with only its chroma planes replaced:
the luma plane, timestamps, rotation and colour tags are the source's. The output side
writes a hidden temporary file and renames it at the end; a failed or interrupted run leaves
nothing under the target.
"""

from __future__ import annotations

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
from vidcolor.errors import OutputError, VidcolorError
from vidcolor.film_input import ColourEncoding, FilmReader, SourceFilm
from vidcolor.film_output import FilmOutput

# How many items may wait between two stages (frames and copied packets).
READ_QUEUE_ITEMS = 64
BATCH_QUEUE_BATCHES = 2
# A film is truncated when its frames end more than this many frames before the video's own
# declared end (1.5: one frame of rounding is allowed, two missing frames are not), or, where
# only the whole container's length is declared, when no stream reaches that far (a film whose
# audio outlasts its pictures is whole).
MISSING_FRAMES_ALLOWED = 1.5
# Seconds the main thread waits for the stages to end once one has failed.
STAGE_JOIN_SECONDS = 10


@dataclass
class VideoOptions:
    """Encoder and batching choices of ``vidcolor FILM``."""

    codec: str | None = None  # None: libx264, or libvpx-vp9 for WebM
    crf: int = 18
    preset: str = "medium"
    batch_size: int = 8
    accept_truncated: bool = False  # a film shorter than declared: a notice instead of an error


Item = av.VideoFrame | av.Packet


@dataclass
class _Batch:
    """Frames and the other streams' packets in demux order, and the frames' new (U, V) planes."""

    items: list[Item]
    chroma: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


_END = object()


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


def _put(q: queue.Queue, item: object, failure: _Failure) -> bool:
    while not failure.stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, failure: _Failure) -> object:
    while not failure.stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    return _END


def _to_planar(frame: av.VideoFrame) -> av.VideoFrame:
    if frame.format.name in ("yuv420p", "yuvj420p"):
        return frame
    return frame.reformat(format="yuv420p")


def _plane_array(plane: av.video.plane.VideoPlane, height: int, width: int) -> np.ndarray:
    data = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return data[:height, :width]


def make_chroma_function(
    colorizer: Colorizer, state: FilmState | None, encoding: ColourEncoding
) -> Callable[[list[av.VideoFrame]], list[tuple[np.ndarray, np.ndarray]]]:
    """A function from a list of yuv420p frames (in film order) to their new (U, V) planes (uint8 NumPy)."""
    pin = colorizer.device.type == "cuda"

    def colorize_chroma(frames: list[av.VideoFrame]) -> list[tuple[np.ndarray, np.ndarray]]:
        height, width = frames[0].height, frames[0].width
        luma = np.stack([_plane_array(f.planes[0], height, width) for f in frames])
        tensor = torch.from_numpy(luma)
        if pin:
            tensor = tensor.pin_memory()
        tensor = tensor.to(colorizer.device, non_blocking=True)
        u, v = chroma_planes(tensor, colorizer, state, full_range=encoding.full_range, matrix=encoding.matrix)
        u, v = u.cpu().numpy(), v.cpu().numpy()
        return [(u[i], v[i]) for i in range(len(frames))]

    return colorize_chroma


def _read_stage(reader: FilmReader, out_queue: queue.Queue, failure: _Failure) -> None:
    """Read the whole film into ``out_queue``, then the end mark."""
    try:
        if reader.read():
            _put(out_queue, _END, failure)
    except BaseException as error:  # noqa: BLE001 - handed to the main thread
        failure.record(error)


def _colour_stage(
    in_queue: queue.Queue, out_queue: queue.Queue, colorize_chroma: Callable, batch_size: int, failure: _Failure
) -> None:
    """Gather items until ``batch_size`` frames and compute the frames' chroma planes."""
    try:
        finished = False
        while not finished:
            batch = _Batch([])
            frames: list[av.VideoFrame] = []
            while len(frames) < batch_size:
                item = _get(in_queue, failure)
                if item is _END:
                    finished = True
                    break
                if isinstance(item, av.VideoFrame):
                    item = _to_planar(item)
                    frames.append(item)
                batch.items.append(item)
            if failure.stop.is_set():
                return
            if frames:
                batch.chroma = colorize_chroma(frames)
            if not _put(out_queue, batch, failure):
                return
        _put(out_queue, _END, failure)
    except BaseException as error:  # noqa: BLE001 - handed to the main thread
        failure.record(error)


def _write_stage(in_queue: queue.Queue, output: FilmOutput, failure: _Failure) -> None:
    """Encode the coloured frames and mux them with the other streams' packets, in order."""
    try:
        while (batch := _get(in_queue, failure)) is not _END:
            chroma = iter(batch.chroma)
            for item in batch.items:
                if isinstance(item, av.VideoFrame):
                    output.write_frame(item, *next(chroma))
                else:
                    output.write_packet(item)
    except BaseException as error:  # noqa: BLE001 - handed to the main thread
        failure.record(error)


def _progress_bar(console: Console, quiet: bool) -> Progress:
    return Progress(
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


def _run_pipeline(
    film: SourceFilm,
    output: FilmOutput,
    colorize_chroma: Callable,
    batch_size: int,
    failure: _Failure,
    progress: Progress,
) -> FilmReader:
    """Run the read, colour and write stages over the whole film, showing progress.

    Returns the reader (its counts go into the summary).

    Raises:
        KeyboardInterrupt: the run was interrupted.
        OutputError: the output could not be written (its message names the output).
        VidcolorError: another stage failed (the film's path, then its error or the exception it raised).
    """
    frames: queue.Queue = queue.Queue(maxsize=READ_QUEUE_ITEMS)
    batches: queue.Queue = queue.Queue(maxsize=BATCH_QUEUE_BATCHES)
    reader = FilmReader(film, output.keeps, lambda item: _put(frames, item, failure), failure.stop.is_set)
    stages = [
        threading.Thread(target=_read_stage, args=(reader, frames, failure), daemon=True),
        threading.Thread(
            target=_colour_stage, args=(frames, batches, colorize_chroma, batch_size, failure), daemon=True
        ),
        threading.Thread(target=_write_stage, args=(batches, output, failure), daemon=True),
    ]
    task = progress.add_task(film.path.name, total=film.expected_frames, fps="-")
    started = time.perf_counter()
    for thread in stages:
        thread.start()
    try:
        while any(t.is_alive() for t in stages) and not failure.stop.is_set():
            stages[-1].join(timeout=0.2)
            fps = output.frames / max(time.perf_counter() - started, 1e-9)
            progress.update(task, completed=output.frames, fps=f"{fps:.1f}")
    except KeyboardInterrupt:
        failure.record(KeyboardInterrupt())
    for thread in stages:
        thread.join(timeout=STAGE_JOIN_SECONDS)
    error = failure.error
    if isinstance(error, KeyboardInterrupt):
        raise KeyboardInterrupt
    if isinstance(error, OutputError):
        raise error
    if isinstance(error, VidcolorError):
        raise VidcolorError(f"{film.path}: {error}") from None
    if error is not None:
        raise VidcolorError(f"{film.path}: {type(error).__name__}: {error}") from error
    return reader


def _check_complete(film: SourceFilm, reader: FilmReader, output: FilmOutput, accept_truncated: bool) -> None:
    """Raise :class:`VidcolorError` if no frame was written or the film's frames end short of its
    declared length (with ``accept_truncated``, add a notice saying what is missing instead)."""
    if output.frames == 0:
        raise VidcolorError(f"{film.path}: no video frames could be decoded")
    if film.declared_end is None:
        return
    declared_end, own = film.declared_end
    end = reader.video_end if own else reader.content_end
    if end is None or declared_end - end <= MISSING_FRAMES_ALLOWED * film.frame_seconds:
        return
    missing = declared_end - end
    what = (
        f"the film ends at {end:.2f} s of the {declared_end:.2f} s it declares: "
        f"{missing:.2f} s (about {round(missing / film.frame_seconds)} frames) missing"
    )
    if not accept_truncated:
        raise VidcolorError(
            f"{film.path}: {what} (truncated or damaged); {output.target} was not written "
            "(--accept-truncated colorizes what there is)"
        )
    output.notices.append(f"{what}; colorized what there is (--accept-truncated)")


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
        KeyboardInterrupt: interrupted (nothing is left under ``target``).
    """
    options = options or VideoOptions()
    console = console or Console(stderr=True, soft_wrap=True)
    started = time.perf_counter()
    failure = _Failure()
    restore_interrupt = _stop_on_interrupt(failure)
    try:
        with SourceFilm.open(source) as film:
            output = FilmOutput(target, film, options.codec, options.crf, options.preset)
            try:
                state = FilmState() if colorizer.decode.temporal else None
                chroma = make_chroma_function(colorizer, state, film.encoding)
                with _progress_bar(console, quiet) as progress:
                    reader = _run_pipeline(film, output, chroma, options.batch_size, failure, progress)
                _check_complete(film, reader, output, options.accept_truncated)
                output.finish()
            finally:
                output.discard()
    finally:
        restore_interrupt()
    for notice in output.notices:
        console.print(f"{source}: {notice}", highlight=False)
    return _summary(source, target, output, reader, state, time.perf_counter() - started)


def _summary(
    source: Path, target: Path, output: FilmOutput, reader: FilmReader, state: FilmState | None, seconds: float
) -> str:
    """One line: frames, time, speed, packets copied, and the events worth knowing."""
    events = f"; {state.cuts} scene cut(s)" if state is not None and state.cuts else ""
    if reader.decode_errors or reader.repeated:
        events += f"; {reader.decode_errors} undecodable packet(s), {reader.repeated} frame(s) repeated to keep timing"
    if reader.late:
        events += f"; {reader.late} frame(s) the decoder delivered after their slot was filled, dropped"
    return (
        f"{source} -> {target}: {output.frames} frames in {seconds:.1f} s "
        f"({output.frames / max(seconds, 1e-9):.1f} fps), {output.copied} packets of other streams copied{events}"
    )
