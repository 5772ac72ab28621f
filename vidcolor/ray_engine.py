"""Films on Ray (``--engine ray``): the segments of every film given, as tasks on a pool of
colorizer workers.

The driver (this process) plans each film and picks up the journal of an earlier run exactly as
the local engine does (:func:`~vidcolor.segmented.prepare_journal`), sends the missing segments
of all films to the workers, writes each segment that comes back into its film's work folder
beside the target, and assembles a film as soon as its last segment is in. A film of one
segment is one task.

Each worker is a Ray actor holding one loaded colorizer: one per GPU of the cluster, else one
per 2 CPU cores (``--workers`` sets the number). A worker reads the film itself, colorizes one
segment with its warm-up and returns the segment's encoded packets (a few MB); the inputs must
therefore be at the same path on every node (a shared file system), while every output file is
written by the driver. The driver holds at most one segment per worker in memory.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch
from rich.console import Console
from rich.progress import Progress

from vidcolor.colorizer import Colorizer, ColorizerSpec
from vidcolor.errors import VidcolorError
from vidcolor.film_pipeline import Failure, progress_bar
from vidcolor.journal import Journal
from vidcolor.segmented import EncoderSettings, RunCounts, colorize_segments, finish_film, prepare_journal
from vidcolor.segments import Segment, SegmentResult
from vidcolor.video import FilmReport, VideoOptions, segments_phrase

CPUS_PER_WORKER = 2
RAY_MISSING = "--engine ray needs Ray: pip install 'vidcolor[ray]'"


def import_ray() -> ModuleType:
    """The ``ray`` module. Raises :class:`VidcolorError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise VidcolorError(RAY_MISSING) from None
    return ray


class SegmentWorker:
    """What runs in each Ray actor: one colorizer, built once, colorizing one segment per call."""

    def __init__(self, spec: ColorizerSpec, threads: int) -> None:
        torch.set_num_threads(threads)
        self.colorizer = spec.build()

    def colorize(
        self, source: str, target: str, segment: Segment, encoder: EncoderSettings, batch_size: int
    ) -> tuple[SegmentResult, RunCounts]:
        """Colorize ``segment`` of ``source`` (with its warm-up); returns its encoded packets and counts."""
        results: list[SegmentResult] = []
        counts = colorize_segments(
            Path(source),
            Path(target),
            [segment],
            self.colorizer,
            encoder,
            batch_size,
            results.append,
            Failure(),
            Progress(disable=True),
        )
        return results[0], counts


@dataclass
class _Film:
    source: Path
    target: Path
    journal: Journal
    started: float
    kept: int
    kept_frames: int
    counts: RunCounts = field(default_factory=RunCounts)
    pending: int = 0
    failed: bool = False
    task: int | None = None


def _workers(ray: ModuleType, spec: ColorizerSpec, wanted: int | None) -> list[object]:
    """Start the actors: one per GPU (or ``wanted``), else one per 2 CPU cores of the cluster."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    use_gpu = gpus > 0 and spec.device != "cpu"
    count = wanted or (gpus if use_gpu else max(1, cpus // CPUS_PER_WORKER))
    threads = max(1, cpus // count) if not use_gpu else CPUS_PER_WORKER
    actor = ray.remote(SegmentWorker).options(num_cpus=min(threads, cpus), num_gpus=1 if use_gpu else 0)
    return [actor.remote(spec, threads) for _ in range(count)]


def colorize_films_on_ray(
    films: list[tuple[Path, Path]],
    spec: ColorizerSpec,
    colorizer: Colorizer,
    options: VideoOptions,
    address: str | None,
    workers: int | None,
    console: Console,
    quiet: bool,
    report: Callable[[str], None],
) -> int:
    """Colorize ``films`` (source, target) on Ray (``address`` None: a local Ray); returns how many
    were written. Each failure goes to ``report`` (the film's others go on); summaries to ``console``.

    ``colorizer`` (the driver's, built from ``spec``) gives the fingerprint of the colours.

    Raises:
        VidcolorError: Ray is not installed or cannot start or connect.
        KeyboardInterrupt: interrupted (finished segments are kept).
    """
    ray = import_ray()
    queue: deque[tuple[_Film, Segment]] = deque()
    jobs: list[_Film] = []
    for source, target in films:
        notices: list[str] = []
        try:
            journal = prepare_journal(
                source,
                target,
                colorizer,
                options.encoder,
                options.segment_seconds,
                options.resume,
                notices,
                always=True,
            )
        except VidcolorError as error:
            report(str(error))
            continue
        for notice in notices:
            console.print(f"{source}: {notice}", highlight=False)
        film = _Film(source, target, journal, time.perf_counter(), len(journal.done), journal.frames_done)
        jobs.append(film)
        for segment in journal.missing():
            queue.append((film, segment))
            film.pending += 1
    if not jobs:
        return 0
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    except Exception as error:  # noqa: BLE001 - Ray raises many kinds; all mean the same here
        raise VidcolorError(f"--engine ray: cannot start or join Ray ({type(error).__name__}: {error})") from None
    written = 0
    try:
        idle = _workers(ray, spec, workers)
        running: dict[object, tuple[_Film, Segment, object]] = {}
        with progress_bar(console, quiet) as progress:
            for film in jobs:
                total = None if film.pending else film.kept_frames
                film.task = progress.add_task(film.source.name, total=total, completed=film.kept_frames, fps="-")
                if not film.pending:
                    written += _finish(film, options, console, report)
            while queue or running:
                while idle and queue:
                    film, segment = queue.popleft()
                    if film.failed:
                        continue
                    worker = idle.pop()
                    call = worker.colorize.remote(
                        str(film.source), str(film.target), segment, options.encoder, options.batch_size
                    )
                    running[call] = (film, segment, worker)
                if not running:
                    break
                [call], _ = ray.wait(list(running), num_returns=1)
                film, segment, worker = running.pop(call)
                idle.append(worker)
                try:
                    result, counts = ray.get(call)
                except Exception as error:  # noqa: BLE001 - a worker's failure ends its film only
                    if not film.failed:
                        film.failed = True
                        report(_failure_message(film.source, error))
                    continue
                film.journal.record(result)
                film.counts.add(counts)
                film.pending -= 1
                progress.update(film.task, completed=film.journal.frames_done)
                if film.pending == 0 and not film.failed:
                    written += _finish(film, options, console, report)
    finally:
        ray.shutdown()
        for film in jobs:
            if film.failed and not film.journal.done:
                film.journal.remove()  # nothing worth keeping
    return written


def _finish(film: _Film, options: VideoOptions, console: Console, report: Callable[[str], None]) -> int:
    """Assemble a film whose segments are all in; returns 1 when it was written (else reports)."""
    try:
        frames, copied, notices = finish_film(
            film.source, film.target, film.journal, options.encoder, options.accept_truncated
        )
    except VidcolorError as error:
        report(str(error))
        return 0
    for notice in notices:
        console.print(f"{film.source}: {notice}", highlight=False)
    phrase = segments_phrase(len(film.journal.plan), film.kept, film.kept_frames, film.counts)
    report_line = FilmReport(frames, copied, film.counts, phrase).line(
        film.source, film.target, time.perf_counter() - film.started
    )
    console.print(report_line + " (on Ray)", highlight=False)
    return 1


def _failure_message(source: Path, error: BaseException) -> str:
    """A worker's exception as one line naming the film (Ray wraps the worker's own exception)."""
    cause = getattr(error, "cause", None) or error
    message = str(cause) if isinstance(cause, VidcolorError) else f"{type(cause).__name__}: {cause}"
    return message if str(source) in message else f"{source}: {message}"
