"""The film engine: colour one span of a film into a sink (:func:`colour_span`, the only copy of
that work, which the Ray workers run too), and one film's whole run on this machine
(:func:`colorize_film`: its plan's spans, then the plan's finish).

Each output frame is the decoded source frame itself with only its chroma planes replaced:
the luma plane, timestamps, rotation and colour tags are the source's. The output is written
under a hidden name and renamed at the end; a failed or interrupted run leaves nothing under
the target (a segmented film keeps its finished segments for the next run).
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import Progress

from vidcolor.colorizer import Colorizer
from vidcolor.decoding import FilmState
from vidcolor.errors import VidcolorError
from vidcolor.film.frames import make_chroma_function
from vidcolor.film.job import FilmJob
from vidcolor.film.pipeline import Failure, progress_bar, run_pipeline, stop_on_interrupt
from vidcolor.film.plan import plan_film
from vidcolor.film.segments import Segment
from vidcolor.film.sink import SinkOpener
from vidcolor.film.source import SourceFilm
from vidcolor.film.summary import RunCounts
from vidcolor.keyframes import keyframe_files, load_keyframes, shot_guide


def colour_span(
    job: FilmJob,
    colorizer: Colorizer,
    span: list[Segment],
    sink: SinkOpener,
    failure: Failure,
    progress: Progress,
    done_before: int = 0,
) -> RunCounts:
    """Colorize ``span`` (consecutive segments, from the first one's warm-up) of ``job.source``
    through the streaming pipeline into the sink ``sink`` opens on the film, and close the sink
    (or discard it on failure); returns what was done. ``done_before``: frames the progress bar
    counts as done already.

    Raises:
        KeyboardInterrupt, OutputError, VidcolorError: as :func:`~vidcolor.film.pipeline.run_pipeline`,
        or the sink's close (e.g. a truncated film).
    """
    with SourceFilm.open(job.source) as film:
        state = _film_state(job, colorizer, film)
        chroma = make_chroma_function(colorizer, state, film.encoding)
        bounds = (span[0].read_from, span[-1].end)
        output = sink(film)
        try:
            reader = run_pipeline(film, output, chroma, job.options.batch_size, failure, progress, bounds, done_before)
            output.close((reader.video_end, reader.content_end))
        finally:
            output.discard()
    cuts = state.cuts if state is not None else 0
    return RunCounts(output.frames, output.warmup, reader.decode_errors, reader.repeated, reader.late, cuts)


def _film_state(job: FilmJob, colorizer: Colorizer, film: SourceFilm) -> FilmState | None:
    """A fresh state for a span: with the temporal link, and the film's keyframes when it has them.

    Raises:
        VidcolorError: keyframes without the temporal link, or a bad keyframe (named).
    """
    if job.options.keyframes is None:
        return FilmState() if colorizer.decode.temporal else None
    if not colorizer.decode.temporal:
        raise VidcolorError("--keyframes carries the keyframes' colours along the temporal link: drop --no-temporal")
    keyframes = load_keyframes(keyframe_files(job.options.keyframes), film)
    return FilmState(guide=shot_guide(keyframes, colorizer, film))


def colorize_film(
    job: FilmJob,
    colorizer: Colorizer,
    console: Console,
    quiet: bool = False,
    *,
    failure: Failure | None = None,
    progress: Progress | None = None,
) -> str:
    """Colorize one film on this machine; returns a one-line summary (notices go to ``console``).

    ``failure``: the run's stop flag, for a caller that cancels it from another thread
    (``failure.record(KeyboardInterrupt())``); ``progress``: where the frames done are counted
    (default: a bar on ``console`` unless ``quiet``).

    Raises:
        VidcolorError: unreadable input, no video stream, no frames, or a failed write.
        KeyboardInterrupt: interrupted (nothing is left under the target; finished segments are
            kept for the next run).
    """
    started = time.perf_counter()
    failure = failure or Failure()
    restore_interrupt = stop_on_interrupt(failure)
    try:
        plan = plan_film(job, colorizer.fingerprint())
        counts = RunCounts()
        try:
            with progress or progress_bar(console, quiet) as progress:
                for span in plan.spans():
                    done = plan.frames_done
                    counts.add(colour_span(job, colorizer, span, plan.sink(span), failure, progress, done))
        except BaseException:
            plan.abandon()
            raise
        report = plan.finish(counts)
    finally:
        restore_interrupt()
    for notice in plan.notices:
        console.print(f"{job.source}: {notice}", highlight=False)
    return report.line(job.source, job.target, time.perf_counter() - started)
