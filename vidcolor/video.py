"""Film mode: colorize a film, in one pass or in resumable segments, keeping every other stream.

Each output frame is the decoded source frame itself with only its chroma planes replaced:
the luma plane, timestamps, rotation and colour tags are the source's. A film longer than
two segments (``VideoOptions.segment_seconds``, 10 s) is colorized in segments
(:mod:`vidcolor.segmented`): its finished segments are kept in a hidden work folder beside the
target, so that running the same command again after a crash resumes. Shorter films, and all
films with ``segment_seconds`` 0, go through the pipeline (:mod:`vidcolor.film_pipeline`) in
one pass into a :class:`~vidcolor.film_output.FilmOutput`. Either way the output is written
under a hidden name and renamed at the end; a failed or interrupted run leaves nothing under
the target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from vidcolor.colorizer import Colorizer
from vidcolor.decoding import FilmState
from vidcolor.film_input import SourceFilm
from vidcolor.film_output import FilmOutput
from vidcolor.film_pipeline import (
    Failure,
    check_complete,
    make_chroma_function,
    progress_bar,
    run_pipeline,
    stop_on_interrupt,
)
from vidcolor.journal import Journal
from vidcolor.segmented import EncoderSettings, RunCounts, colorize_segments, finish_film, prepare_journal, runs_of
from vidcolor.segments import DEFAULT_SEGMENT_SECONDS


@dataclass
class VideoOptions:
    """Encoder and batching choices of ``vidcolor FILM``."""

    codec: str | None = None  # None: libx264, or libvpx-vp9 for WebM
    crf: int = 18
    preset: str = "medium"
    batch_size: int = 8
    accept_truncated: bool = False  # a film shorter than declared: a notice instead of an error
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS  # 0: one pass, no resume
    resume: bool = True  # keep the finished segments of an earlier run with the same fingerprint

    @property
    def encoder(self) -> EncoderSettings:
        return EncoderSettings(self.codec, self.crf, self.preset)


@dataclass
class FilmReport:
    """What a film's run did: frames in the output, packets of other streams copied, the run's
    counts, and a phrase about its segments (empty in one pass)."""

    frames: int
    copied: int
    counts: RunCounts
    segments: str = ""

    def line(self, source: Path, target: Path, seconds: float) -> str:
        """One line: frames, time, speed, packets copied, and the events worth knowing."""
        counts = self.counts
        events = f"; {counts.cuts} scene cut(s)" if counts.cuts else ""
        if counts.decode_errors or counts.repeated:
            events += (
                f"; {counts.decode_errors} undecodable packet(s), {counts.repeated} frame(s) repeated to keep timing"
            )
        if counts.late:
            events += f"; {counts.late} frame(s) the decoder delivered after their slot was filled, dropped"
        return (
            f"{source} -> {target}: {self.frames} frames in {seconds:.1f} s "
            f"({counts.frames / max(seconds, 1e-9):.1f} fps), {self.copied} packets of other streams copied"
            f"{self.segments}{events}"
        )


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
        KeyboardInterrupt: interrupted (nothing is left under ``target``; finished segments are
            kept for the next run).
    """
    options = options or VideoOptions()
    console = console or Console(stderr=True, soft_wrap=True, markup=False)
    started = time.perf_counter()
    failure = Failure()
    restore_interrupt = stop_on_interrupt(failure)
    notices: list[str] = []
    try:
        journal = None
        if options.segment_seconds > 0:
            journal = prepare_journal(
                source, target, colorizer, options.encoder, options.segment_seconds, options.resume, notices
            )
        run = _FilmRun(source, target, colorizer, options, console, quiet, failure, notices)
        summary = _one_pass(run) if journal is None else _in_segments(run, journal)
    finally:
        restore_interrupt()
    for notice in notices:
        console.print(f"{source}: {notice}", highlight=False)
    return summary.line(source, target, time.perf_counter() - started)


@dataclass
class _FilmRun:
    """One film's run: what to colorize into what, with what, where to report."""

    source: Path
    target: Path
    colorizer: Colorizer
    options: VideoOptions
    console: Console
    quiet: bool
    failure: Failure
    notices: list[str]


def _one_pass(run: _FilmRun) -> FilmReport:
    """The whole film through one pipeline into one output."""
    source, target, colorizer, options, failure = run.source, run.target, run.colorizer, run.options, run.failure
    with SourceFilm.open(source) as film:
        output = FilmOutput(target, film, options.codec, options.crf, options.preset)
        try:
            state = FilmState() if colorizer.decode.temporal else None
            chroma = make_chroma_function(colorizer, state, film.encoding)
            with progress_bar(run.console, run.quiet) as progress:
                reader = run_pipeline(film, output, chroma, options.batch_size, failure, progress)
            ends = (reader.video_end, reader.content_end)
            check_complete(film, output.frames, ends, target, output.notices, options.accept_truncated)
            output.finish()
        finally:
            output.discard()
    run.notices.extend(output.notices)
    cuts = state.cuts if state is not None else 0
    counts = RunCounts(output.frames, 0, reader.decode_errors, reader.repeated, reader.late, cuts)
    return FilmReport(output.frames, output.copied, counts)


def _in_segments(run: _FilmRun, journal: Journal) -> FilmReport:
    """The film's missing segments, then the assembly."""
    source, target, options = run.source, run.target, run.options
    kept, kept_frames = len(journal.done), journal.frames_done
    counts = RunCounts()
    try:
        with progress_bar(run.console, run.quiet) as progress:
            for segments in runs_of(journal.missing()):
                counts.add(
                    colorize_segments(
                        source,
                        target,
                        segments,
                        run.colorizer,
                        options.encoder,
                        options.batch_size,
                        journal.record,
                        run.failure,
                        progress,
                        journal.frames_done,
                    )
                )
    except BaseException:
        if not journal.done:
            journal.remove()  # nothing worth keeping
        raise
    frames, copied, output_notices = finish_film(source, target, journal, options.encoder, options.accept_truncated)
    run.notices.extend(output_notices)
    return FilmReport(frames, copied, counts, segments_phrase(len(journal.plan), kept, kept_frames, counts))


def segments_phrase(segments: int, kept: int, kept_frames: int, counts: RunCounts) -> str:
    """What a segmented run did, for its summary: segments, those kept, frames done now."""
    phrase = f"; {segments} segment{'s' if segments != 1 else ''}"
    if kept:
        phrase += f", {kept} of them ({kept_frames} frames) kept from an earlier run"
    return phrase + f"; {counts.frames} frames colorized now, {counts.warmup} of warm-up"
