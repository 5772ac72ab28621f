"""A long film colorized in segments, resumable after a crash (the local engine).

:func:`prepare_journal` plans the film's segments (or picks up the journal of an earlier,
unfinished run with the same fingerprint); :func:`colorize_segments` colorizes a run of
consecutive segments through the streaming pipeline, each segment encoded on its own and
recorded as soon as it is finished; :func:`finish_film` assembles the final film and removes
the work folder. The local engine runs all missing segments as few runs as possible: one
stream from the first missing segment's warm-up to the end, so that a film colorized in one go
has the same colours as a one-pass run. The Ray engine (:mod:`vidcolor.ray_engine`) runs
single segments on workers with the same functions.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.progress import Progress

from vidcolor import __version__
from vidcolor.colorizer import Colorizer
from vidcolor.decoding import FilmState
from vidcolor.errors import OutputError
from vidcolor.film_assembly import assemble
from vidcolor.film_input import SourceFilm
from vidcolor.film_output import FilmOutput
from vidcolor.film_pipeline import Failure, check_complete, make_chroma_function, run_pipeline
from vidcolor.journal import Journal, film_fingerprint, work_folder
from vidcolor.segments import WARMUP_FRAMES, Segment, SegmentEncoder, SegmentResult, SegmentWriter, plan_segments


@dataclass(frozen=True)
class EncoderSettings:
    """The colour video's encoder: codec (None: the container's usual one), CRF and preset."""

    codec: str | None
    crf: int
    preset: str


@dataclass
class RunCounts:
    """What one run over segments did: frames written, warm-up frames, decode events, cuts."""

    frames: int = 0
    warmup: int = 0
    decode_errors: int = 0
    repeated: int = 0
    late: int = 0
    cuts: int = 0

    def add(self, other: RunCounts) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def prepare_journal(
    source: Path,
    target: Path,
    colorizer: Colorizer,
    encoder: EncoderSettings,
    segment_seconds: float,
    resume: bool,
    notices: list[str],
    always: bool = False,
) -> Journal | None:
    """The journal to work to for ``source`` -> ``target``: an earlier run's (``resume``, same
    fingerprint) or a new plan (``segment_seconds`` 0: the whole film as one segment); None when
    the film is one segment, unless ``always`` (then colorize it in one pass). Notices (work
    started afresh) go to ``notices``.

    Raises:
        VidcolorError: the film cannot be read; OutputError: the work folder cannot be written.
    """
    settings = {
        "encoder": [encoder.codec, encoder.crf, encoder.preset, target.suffix.lower()],
        "segments": [segment_seconds, WARMUP_FRAMES],
        "vidcolor": __version__,
    }
    fingerprint = film_fingerprint(source, colorizer.fingerprint(), settings)
    folder = work_folder(target)
    if resume:
        journal, notice = Journal.resume(folder, fingerprint)
        if notice:
            notices.append(notice)
        if journal is not None:
            return journal
    elif folder.exists():
        notices.append("--no-resume: the unfinished work of an earlier run was removed")
    plan = plan_segments(source, segment_seconds) if segment_seconds > 0 else [Segment(0, None, None, None)]
    if len(plan) < 2 and not always:
        shutil.rmtree(folder, ignore_errors=True)  # one pass: no stale work left behind either
        return None
    try:
        return Journal.start(folder, fingerprint, plan)
    except OSError as error:  # a read-only or full disk, an unwritable folder: the output cannot be written
        shutil.rmtree(folder, ignore_errors=True)
        raise OutputError(target, error) from None


def runs_of(segments: list[Segment]) -> list[list[Segment]]:
    """``segments`` (in film order) split into runs of consecutive indices."""
    runs: list[list[Segment]] = []
    for segment in segments:
        if runs and runs[-1][-1].index == segment.index - 1:
            runs[-1].append(segment)
        else:
            runs.append([segment])
    return runs


def colorize_segments(
    source: Path,
    target: Path,
    segments: list[Segment],
    colorizer: Colorizer,
    encoder: EncoderSettings,
    batch_size: int,
    finished: Callable[[SegmentResult], None],
    failure: Failure,
    progress: Progress,
    done_before: int = 0,
) -> RunCounts:
    """Colorize consecutive ``segments`` of ``source`` (with the first one's warm-up) and hand
    each finished segment to ``finished``; returns the run's counts.

    Raises:
        KeyboardInterrupt, OutputError, VidcolorError: as :func:`~vidcolor.film_pipeline.run_pipeline`.
    """
    with SourceFilm.open(source) as film:
        state = FilmState() if colorizer.decode.temporal else None
        chroma = make_chroma_function(colorizer, state, film.encoding)
        writer = SegmentWriter(
            segments,
            lambda: SegmentEncoder(target, film, encoder.codec, encoder.crf, encoder.preset),
            finished,
            film.frame_seconds,
        )
        span = (segments[0].read_from, segments[-1].end)
        reader = run_pipeline(film, writer, chroma, batch_size, failure, progress, span, done_before)
        writer.finish()
    return RunCounts(
        writer.frames,
        writer.warmup,
        reader.decode_errors,
        reader.repeated,
        reader.late,
        state.cuts if state is not None else 0,
    )


def finish_film(
    source: Path, target: Path, journal: Journal, encoder: EncoderSettings, accept_truncated: bool
) -> tuple[int, int, list[str]]:
    """Assemble the finished segments of ``journal`` into ``target`` (written under a hidden name,
    then renamed), check the film is whole, and remove the work folder. Returns the frames, the
    packets of other streams copied and the output's notices.

    Raises:
        OutputError, VidcolorError: the film cannot be written or is truncated (the work folder
        is kept).
    """
    with SourceFilm.open(source) as film:
        output = FilmOutput(target, film, encoder.codec, encoder.crf, encoder.preset)
        try:
            assembly = assemble(film, journal, output)
            ends = (assembly.video_end, assembly.content_end)
            check_complete(film, assembly.frames, ends, target, output.notices, accept_truncated)
            output.finish()
        finally:
            output.discard()
    journal.remove()
    return assembly.frames, assembly.copied, output.notices
