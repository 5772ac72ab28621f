"""Films on Ray (``--engine ray``): the segments of every film given, as tasks on a pool of
colorizer workers.

The driver (this process) plans each film as the local engine does
(:func:`~vidcolor.film.plan.plan_film`, always in segments: a film of one segment is one task),
sends the missing segments of all films to the workers, records each segment that comes back in
its film's plan, and finishes a film (the plan's own finish) as soon as its last segment is in.

Each worker is a Ray actor holding one loaded colorizer: one per GPU of the cluster, else one
per 2 CPU cores (``--workers`` sets the number). A worker reads the film itself, colours one
segment with its warm-up (:func:`~vidcolor.film.engine.colour_span`) and returns the segment's
encoded packets (a few MB); the inputs must therefore be at the same path on every node (a
shared file system), while every output file is written by the driver. The driver holds at most
one segment per worker in memory.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

import torch
from rich.console import Console
from rich.progress import Progress

from vidcolor.colorizer import ColorizerSpec
from vidcolor.errors import VidcolorError
from vidcolor.film.engine import colour_span
from vidcolor.film.job import FilmJob
from vidcolor.film.pipeline import Failure, progress_bar
from vidcolor.film.plan import InSegments, plan_film
from vidcolor.film.segments import Segment, SegmentResult, segment_sink
from vidcolor.film.summary import RunCounts

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
    """What runs in each Ray actor: one colorizer, built once, colouring one segment per call."""

    def __init__(self, spec: ColorizerSpec, threads: int) -> None:
        torch.set_num_threads(threads)
        self.colorizer = spec.build()

    def colorize(self, job: FilmJob, segment: Segment) -> tuple[SegmentResult, RunCounts]:
        """Colour ``segment`` of ``job.source`` (with its warm-up); returns its encoded packets and counts."""
        results: list[SegmentResult] = []
        sink = segment_sink(job.target, job.options.encoder, [segment], results.append)
        counts = colour_span(job, self.colorizer, [segment], sink, Failure(), Progress(disable=True))
        return results[0], counts


@dataclass
class _Film:
    """One film on Ray: its plan, when it started, its counts and segments still out."""

    plan: InSegments
    started: float
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


@dataclass(frozen=True)
class RayCluster:
    """Where ``--engine ray`` runs: ``address`` None starts a local Ray; ``workers`` None: one
    per GPU, else one per 2 CPU cores."""

    address: str | None = None
    workers: int | None = None


def _plans(
    jobs: list[FilmJob], colours: str, console: Console, report: Callable[[str], None]
) -> tuple[list[_Film], deque[tuple[_Film, Segment]]]:
    """Every film's plan (failures reported and left out), and the queue of missing segments."""
    films: list[_Film] = []
    queue: deque[tuple[_Film, Segment]] = deque()
    for job in jobs:
        try:
            plan = plan_film(job, colours, always_segments=True)
        except VidcolorError as error:
            report(str(error))
            continue
        assert isinstance(plan, InSegments)
        for notice in plan.notices:
            console.print(f"{job.source}: {notice}", highlight=False)
        plan.notices.clear()
        film = _Film(plan, time.perf_counter())
        films.append(film)
        for segment in plan.journal.missing():
            queue.append((film, segment))
            film.pending += 1
    return films, queue


def colorize_films_on_ray(
    jobs: list[FilmJob],
    spec: ColorizerSpec,
    colours: str,
    cluster: RayCluster,
    console: Console,
    quiet: bool,
    report: Callable[[str], None],
) -> int:
    """Colorize ``jobs`` on Ray; returns how many films were written. Each failure goes to
    ``report`` (the film's others go on); summaries to ``console``. ``colours``: the fingerprint
    of the colours (the driver's colorizer built from ``spec``).

    Raises:
        VidcolorError: Ray is not installed or cannot start or connect.
        KeyboardInterrupt: interrupted (finished segments are kept).
    """
    ray = import_ray()
    films, queue = _plans(jobs, colours, console, report)
    if not films:
        return 0
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    except Exception as error:  # noqa: BLE001 - Ray raises many kinds; all mean the same here
        raise VidcolorError(f"--engine ray: cannot start or join Ray ({type(error).__name__}: {error})") from None
    try:
        with progress_bar(console, quiet) as progress:
            return _run(ray, _workers(ray, spec, cluster.workers), films, queue, progress, console, report)
    finally:
        ray.shutdown()
        for film in films:
            if film.failed:
                film.plan.abandon()


def _run(
    ray: ModuleType,
    idle: list[object],
    films: list[_Film],
    queue: deque[tuple[_Film, Segment]],
    progress: Progress,
    console: Console,
    report: Callable[[str], None],
) -> int:
    """Keep every worker busy until the queue is empty; record each segment that comes back and
    finish each film whose segments are all in. Returns the films written."""
    written = 0
    for film in films:
        done = film.plan.kept_frames
        total = None if film.pending else done
        film.task = progress.add_task(film.plan.job.source.name, total=total, completed=done, fps="-")
        if not film.pending:
            written += _finish(film, console, report)
    running: dict[object, tuple[_Film, object]] = {}
    while queue or running:
        while idle and queue:
            film, segment = queue.popleft()
            if not film.failed:
                worker = idle.pop()
                running[worker.colorize.remote(film.plan.job, segment)] = (film, worker)
        if not running:
            break
        [call], _ = ray.wait(list(running), num_returns=1)
        film, worker = running.pop(call)
        idle.append(worker)
        try:
            result, counts = ray.get(call)
        except Exception as error:  # noqa: BLE001 - a worker's failure ends its film only
            if not film.failed:
                film.failed = True
                report(_failure_message(film.plan.job, error))
            continue
        film.plan.record(result)
        film.counts.add(counts)
        film.pending -= 1
        progress.update(film.task, completed=film.plan.frames_done)
        if film.pending == 0 and not film.failed:
            written += _finish(film, console, report)
    return written


def _finish(film: _Film, console: Console, report: Callable[[str], None]) -> int:
    """The plan's finish for a film whose segments are all in; returns 1 when it was written (else reports)."""
    job = film.plan.job
    try:
        summary = film.plan.finish(film.counts)
    except VidcolorError as error:
        report(str(error))
        return 0
    for notice in film.plan.notices:
        console.print(f"{job.source}: {notice}", highlight=False)
    line = summary.line(job.source, job.target, time.perf_counter() - film.started)
    console.print(line + " (on Ray)", highlight=False)
    return 1


def _failure_message(job: FilmJob, error: BaseException) -> str:
    """A worker's exception as one line naming the film (Ray wraps the worker's own exception)."""
    cause = getattr(error, "cause", None) or error
    message = str(cause) if isinstance(cause, VidcolorError) else f"{type(cause).__name__}: {cause}"
    return message if str(job.source) in message else f"{job.source}: {message}"
