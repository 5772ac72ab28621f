"""A film's plan: the spans of it still to colorize, where each span's frames go, and the finish.

Every run of a film, local or on Ray, works to a plan:

- :class:`OnePass`: a film of one segment (or ``segment_seconds`` 0): a single span whose sink
  is the final output (:class:`~vidcolor.film.sink.FilmOutput`); finishing it only reports.
- :class:`InSegments`: a longer film, cut into segments at keyframes and kept in a journal
  beside the target (:mod:`vidcolor.film.journal`), so that the same command resumes after a
  crash; each span's sink is a :class:`~vidcolor.film.segments.SegmentWriter`, and finishing
  assembles the segments into the final output and removes the journal.

:func:`plan_film` picks one (or picks up the journal of an earlier, unfinished run with the
same fingerprint).
"""

from __future__ import annotations

import shutil

from vidcolor import __version__
from vidcolor.errors import OutputError
from vidcolor.film.assembly import assemble
from vidcolor.film.job import FilmJob
from vidcolor.film.journal import Journal, film_fingerprint, work_folder
from vidcolor.film.segments import (
    WARMUP_FRAMES,
    WHOLE_FILM,
    Segment,
    SegmentResult,
    plan_segments,
    runs_of,
    segment_sink,
)
from vidcolor.film.sink import FilmOutput, FrameSink, SinkOpener
from vidcolor.film.source import SourceFilm
from vidcolor.film.summary import FilmReport, RunCounts, segments_phrase
from vidcolor.keyframes import keyframe_files, keyframes_fingerprint


class OnePass:
    """The whole film as one span, written straight into the final output."""

    def __init__(self, job: FilmJob, notices: list[str]) -> None:
        self.job = job
        self.notices = notices
        self.frames_done = 0
        self._output: FilmOutput | None = None

    def spans(self) -> list[list[Segment]]:
        return [[WHOLE_FILM]]

    def sink(self, span: list[Segment]) -> SinkOpener:
        def open_output(film: SourceFilm) -> FrameSink:
            options = self.job.options
            self._output = FilmOutput(self.job.target, film, options.encoder, options.accept_truncated)
            return self._output

        return open_output

    def abandon(self) -> None:
        """After a failure: nothing to keep (the output removed its partial file itself)."""

    def finish(self, counts: RunCounts) -> FilmReport:
        """The report of the written film."""
        assert self._output is not None, "finish() before the span was colorized"
        self.notices.extend(self._output.notices)
        return FilmReport(self._output.frames, self._output.copied, counts)


class InSegments:
    """The film's segments still missing from its journal, each run of them one span."""

    def __init__(self, job: FilmJob, journal: Journal, notices: list[str]) -> None:
        self.job = job
        self.journal = journal
        self.notices = notices
        self.kept, self.kept_frames = len(journal.done), journal.frames_done

    @property
    def frames_done(self) -> int:
        return self.journal.frames_done

    def spans(self) -> list[list[Segment]]:
        """The missing segments in runs of consecutive ones: a film colorized in one go is one
        stream from the first missing segment's warm-up to the end, as a one-pass run is."""
        return runs_of(self.journal.missing())

    def sink(self, span: list[Segment]) -> SinkOpener:
        return segment_sink(self.job.target, self.job.options.encoder, span, self.record)

    def record(self, result: SegmentResult) -> None:
        """Keep a finished segment (its file and journal entry)."""
        self.journal.record(result)

    def abandon(self) -> None:
        """After a failure: remove the work folder if no segment is finished (nothing to resume)."""
        if not self.journal.done:
            self.journal.remove()

    def finish(self, counts: RunCounts) -> FilmReport:
        """Assemble the finished segments into the target (written under a hidden name, then
        renamed; the film checked whole) and remove the work folder.

        Raises:
            OutputError, VidcolorError: the film cannot be written or is truncated (the work
            folder is kept).
        """
        options = self.job.options
        with SourceFilm.open(self.job.source) as film:
            output = FilmOutput(self.job.target, film, options.encoder, options.accept_truncated)
            try:
                assembly = assemble(film, self.journal, output)
                output.close((assembly.video_end, assembly.content_end))
            finally:
                output.discard()
        self.journal.remove()
        self.notices.extend(output.notices)
        phrase = segments_phrase(len(self.journal.plan), self.kept, self.kept_frames, counts)
        return FilmReport(assembly.frames, assembly.copied, counts, phrase)


FilmPlan = OnePass | InSegments


def plan_film(job: FilmJob, colours: str, always_segments: bool = False) -> FilmPlan:
    """The plan for ``job``: the journal of an earlier run (``resume``, same fingerprint, which
    ``colours``, the colorizer's fingerprint, is part of), or a new plan; one pass when the film
    is one segment, unless ``always_segments`` (then a journal of one segment).

    Raises:
        VidcolorError: the film cannot be read; OutputError: the work folder cannot be written.
    """
    options, notices = job.options, []
    # a bad folder or name is said before any work
    keyframes = keyframe_files(options.keyframes) if options.keyframes is not None else None
    if options.segment_seconds <= 0 and not always_segments:
        return OnePass(job, notices)
    encoder = options.encoder
    settings = {
        "encoder": [encoder.codec, encoder.crf, encoder.preset, job.target.suffix.lower()],
        "segments": [options.segment_seconds, WARMUP_FRAMES],
        "vidcolor": __version__,
    }
    if keyframes is not None:  # a changed keyframe changes the output
        settings["keyframes"] = keyframes_fingerprint(keyframes)
    fingerprint = film_fingerprint(job.source, colours, settings)
    folder = work_folder(job.target)
    if options.resume:
        journal, notice = Journal.resume(folder, fingerprint)
        notices += [notice] if notice else []
        if journal is not None:
            return InSegments(job, journal, notices)
    elif folder.exists():
        notices.append("--no-resume: the unfinished work of an earlier run was removed")
    segments = plan_segments(job.source, options.segment_seconds) if options.segment_seconds > 0 else [WHOLE_FILM]
    if len(segments) < 2 and not always_segments:
        shutil.rmtree(folder, ignore_errors=True)  # one pass: no stale work left behind either
        return OnePass(job, notices)
    try:
        return InSegments(job, Journal.start(folder, fingerprint, segments), notices)
    except OSError as error:  # a read-only or full disk, an unwritable folder: the output cannot be written
        shutil.rmtree(folder, ignore_errors=True)
        raise OutputError(job.target, error) from None
