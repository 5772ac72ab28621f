"""The stages of a film's streaming pipeline: three threads, their failure, Ctrl-C and progress.

Three threads joined by bounded queues overlap the work:

    read (demux + threaded decode, :class:`~vidcolor.film.source.FilmReader`)
        -> colour (batch luma -> network -> chroma, on the device:
           :func:`~vidcolor.film.frames.make_chroma_function`)
        -> write (a :class:`~vidcolor.film.sink.FrameSink`: encode + mux into the final
           :class:`~vidcolor.film.sink.FilmOutput`, packets of the other streams copied in
           demux order, or a :class:`~vidcolor.film.segments.SegmentWriter` for a run of segments)

The pipeline runs over a whole film or over a span of it (a run of segments and its warm-up).
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vidcolor.errors import OutputError, VidcolorError
from vidcolor.film.sink import FrameSink
from vidcolor.film.source import FilmReader, SourceFilm, to_planar

# How many items may wait between two stages (frames and copied packets).
READ_QUEUE_ITEMS = 64
BATCH_QUEUE_BATCHES = 2
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
                    item = to_planar(item)
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
