"""The stages of a film's streaming pipeline, and the checks around a run.

Three threads joined by bounded queues overlap the work:

    read (demux + threaded decode, :class:`~vidcolor.film_input.FilmReader`)
        -> colour (batch luma -> network -> chroma, on the device)
        -> write (encode + mux, packets of the other streams copied in demux order: a
           :class:`~vidcolor.film_output.FilmOutput`, or a
           :class:`~vidcolor.segments.SegmentWriter` for a run of segments)

The pipeline runs over a whole film or over a span of it (a run of segments and its warm-up).
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vidcolor.chroma import chroma_planes
from vidcolor.colorizer import Colorizer
from vidcolor.decoding import FilmState
from vidcolor.errors import OutputError, TruncatedFilmError, VidcolorError
from vidcolor.film_input import ColourEncoding, FilmReader, SourceFilm


class FrameSink(Protocol):
    """Where the write stage puts coloured frames and other streams' packets."""

    frames: int

    def keeps(self, packet: av.Packet) -> bool: ...

    def write_frame(self, frame: av.VideoFrame, u: np.ndarray, v: np.ndarray) -> None: ...

    def write_packet(self, packet: av.Packet) -> None: ...


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


Item = av.VideoFrame | av.Packet


@dataclass
class _Batch:
    """Frames and the other streams' packets in demux order, and the frames' new (U, V) planes."""

    items: list[Item]
    chroma: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


_END = object()


class Failure:
    """The first exception raised in any stage, and a flag telling the others to stop."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def record(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.stop.set()


def stop_on_interrupt(failure: Failure) -> Callable[[], None]:
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


def _put(q: queue.Queue, item: object, failure: Failure) -> bool:
    while not failure.stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, failure: Failure) -> object:
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


def _read_stage(reader: FilmReader, out_queue: queue.Queue, failure: Failure) -> None:
    """Read the whole film into ``out_queue``, then the end mark."""
    try:
        if reader.read():
            _put(out_queue, _END, failure)
    except BaseException as error:  # noqa: BLE001 - handed to the main thread
        failure.record(error)


def _colour_stage(
    in_queue: queue.Queue, out_queue: queue.Queue, colorize_chroma: Callable, batch_size: int, failure: Failure
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


def _write_stage(in_queue: queue.Queue, output: FrameSink, failure: Failure) -> None:
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


def progress_bar(console: Console, quiet: bool) -> Progress:
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


def run_pipeline(
    film: SourceFilm,
    output: FrameSink,
    colorize_chroma: Callable,
    batch_size: int,
    failure: Failure,
    progress: Progress,
    span: tuple[int | None, int | None] = (None, None),
    done_before: int = 0,
) -> FilmReader:
    """Run the read, colour and write stages over the whole film (or the frames of ``span``,
    see :class:`FilmReader`), showing progress (``done_before`` frames counted as done).

    Returns the reader (its counts go into the summary).

    Raises:
        KeyboardInterrupt: the run was interrupted.
        OutputError: the output could not be written (its message names the output).
        VidcolorError: another stage failed (the film's path, then its error or the exception it raised).
    """
    frames: queue.Queue = queue.Queue(maxsize=READ_QUEUE_ITEMS)
    batches: queue.Queue = queue.Queue(maxsize=BATCH_QUEUE_BATCHES)
    reader = FilmReader(film, output.keeps, lambda item: _put(frames, item, failure), failure.stop.is_set, span)
    stages = [
        threading.Thread(target=_read_stage, args=(reader, frames, failure), daemon=True),
        threading.Thread(
            target=_colour_stage, args=(frames, batches, colorize_chroma, batch_size, failure), daemon=True
        ),
        threading.Thread(target=_write_stage, args=(batches, output, failure), daemon=True),
    ]
    task = progress.add_task(film.path.name, total=film.expected_frames, completed=done_before, fps="-")
    started = time.perf_counter()
    for thread in stages:
        thread.start()
    try:
        while any(t.is_alive() for t in stages) and not failure.stop.is_set():
            stages[-1].join(timeout=0.2)
            fps = output.frames / max(time.perf_counter() - started, 1e-9)
            progress.update(task, completed=done_before + output.frames, fps=f"{fps:.1f}")
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
