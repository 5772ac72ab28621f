"""``vidcolor INPUT...``: a batch of inputs paired with outputs, images colorized then films, reported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from vidcolor.colorizer import Colorizer, ColorizerSpec
from vidcolor.errors import TruncatedFilmError, VidcolorError, one_file
from vidcolor.film.engine import colorize_film
from vidcolor.film.job import FilmJob, FilmOptions
from vidcolor.film.journal import work_folder
from vidcolor.film.ray import RayCluster, colorize_films_on_ray
from vidcolor.hints import read_hints
from vidcolor.image import colorize_picture, read_image, write_image
from vidcolor.inputs import IMAGE_SUFFIXES, VIDEO_SUFFIXES, expand_inputs, few_names, sniff_kind
from vidcolor.keyframes import keyframes_folder

OUTPUT_TAG = "_color"  # what the default output's name adds to the input's stem


def default_output(path: Path, kind: str, folder: Path | None = None) -> Path:
    """``name_color.ext`` beside the input (or in ``folder``); keeps a known extension."""
    suffix = path.suffix.lower()
    if kind == "image" and suffix not in IMAGE_SUFFIXES:
        suffix = ".png"
    if kind == "video" and suffix not in VIDEO_SUFFIXES:
        suffix = ".mkv"
    name = f"{path.stem}{OUTPUT_TAG}{suffix if suffix != path.suffix.lower() else path.suffix}"
    return (folder or path.parent) / name


def earlier_outputs(files: list[Path]) -> list[Path]:
    """The files of ``files`` that look like vidcolor's default outputs of others among them: in
    the same folder, named ``name_color`` (any extension) beside a ``name``. A folder colorized
    twice would otherwise colorize its first run's outputs too."""
    stems = {(f.parent, f.stem) for f in files}
    return [f for f in files if f.stem.endswith(OUTPUT_TAG) and (f.parent, f.stem.removesuffix(OUTPUT_TAG)) in stems]


@dataclass
class Job:
    """One input, its output and its kind (``"image"`` or ``"video"``)."""

    source: Path
    target: Path
    kind: str


def _kept_work(target: Path, truncated: bool = False) -> str:
    """What to say about the finished segments a failed or interrupted run leaves behind (for a
    truncated film, that only ``--accept-truncated`` can finish from them)."""
    if not work_folder(target).exists():
        return ""
    if truncated:
        return (
            f" (its finished segments are kept in {work_folder(target)}: the same command with --accept-truncated "
            "finishes from them; delete that folder to discard them)"
        )
    return f" (its finished segments are kept in {work_folder(target)}: the same command resumes)"


def _unsaid_work(message: str, target: Path) -> str:
    """:func:`_kept_work` unless ``message`` already says it."""
    return "" if str(work_folder(target)) in message else _kept_work(target)


def plan_jobs(
    inputs: list[Path],
    output: Path | None,
    overwrite: bool,
    report: Callable[[str], None],
    note: Callable[[str], None] | None = None,
) -> list[Job]:
    """Pair each input with its output; bad inputs are reported (``report``) and left out; links
    skipped in folders, and the earlier outputs found in them (:func:`earlier_outputs`; a file
    named as an input is kept), noted (``note``)."""
    files = expand_inputs(inputs, report=report, note=note)
    given = set(inputs)
    skipped = [f for f in earlier_outputs(files) if f not in given]
    if skipped:
        left_out = set(skipped)
        files = [f for f in files if f not in left_out]
        if note is not None:
            note(
                f"skipped {len(skipped)} earlier output(s) found in the folder(s) ({few_names(skipped)}); "
                "name such a file to colorize it"
            )
    several = len(files) > 1 or any(p.is_dir() for p in inputs)
    folder = None
    if output is not None and (several or output.is_dir() or (not output.suffix and not output.exists())):
        folder = output
        if folder.exists() and not folder.is_dir():
            raise VidcolorError(f"{folder}: several inputs need -o to be a folder")
        folder.mkdir(parents=True, exist_ok=True)
    jobs: list[Job] = []
    for source in files:
        with one_file(source, report):
            kind = sniff_kind(source)
            target = output if output is not None and folder is None else default_output(source, kind, folder)
            if target.exists() and target.resolve() == source.resolve():
                raise VidcolorError(f"{source}: the output would overwrite the input")
            if target.exists() and not overwrite:
                raise VidcolorError(f"{target}: exists (use --overwrite to replace it)")
            if not target.parent.exists():
                raise VidcolorError(f"{target}: folder {target.parent} does not exist")
            jobs.append(Job(source, target, kind))
    return jobs


def run_colorize(
    inputs: list[Path],
    output: Path | None,
    spec: ColorizerSpec,
    *,
    film_options: FilmOptions | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    ray: RayCluster | None = None,
    hints: Path | None = None,
) -> int:
    """Colorize every input (images, then films; films on Ray with ``ray``) with the colorizer
    ``spec`` describes (``hints``: colour hints for the one photo given); returns the number of
    failures (errors go to stderr)."""
    console = Console(stderr=True, soft_wrap=True, markup=False)  # file names may hold [brackets]
    quiet = quiet or not console.is_terminal
    failures = 0

    def report(message: str) -> None:
        nonlocal failures
        failures += 1
        console.print(Text.assemble(("vidcolor: error:", "red"), f" {message}"), highlight=False, soft_wrap=True)

    try:
        jobs = plan_jobs(inputs, output, overwrite, report, note=lambda m: console.print(m, highlight=False))
    except VidcolorError as error:
        report(str(error))
        return failures
    if not jobs:
        console.print(f"nothing colorized ({failures} failed)", highlight=False)
        return failures
    if hints is not None and [job.kind for job in jobs] != ["image"]:
        report(f"--hints {hints}: hints go with one photo (got {len(jobs)} input(s))")
        return failures
    try:
        colorizer = spec.build()
    except VidcolorError as error:
        report(str(error))
        return failures
    for notice in colorizer.notices:
        console.print(f"vidcolor: {notice}", highlight=False)
    images = [job for job in jobs if job.kind == "image"]
    films = [_film_job(job, film_options or FilmOptions()) for job in jobs if job.kind == "video"]
    done = _colorize_images(images, colorizer, console, quiet, report, hints)
    if films and ray is not None:
        try:
            done += colorize_films_on_ray(films, spec, colorizer.fingerprint(), ray, console, quiet, report)
        except VidcolorError as error:
            report(str(error))
        except KeyboardInterrupt:
            kept = any(work_folder(job.target).exists() for job in films)
            hint = " (their finished segments are kept: the same command resumes)" if kept else ""
            report(f"interrupted; the films not finished were not written{hint}")
            raise SystemExit(130) from None
    else:
        done += sum(_colorize_film(job, colorizer, console, quiet, report) for job in films)
    console.print(
        f"colorized {done} of {done + failures} file(s)" + (f", {failures} failed" if failures else ""), highlight=False
    )
    return failures


def _film_job(job: Job, options: FilmOptions) -> FilmJob:
    """The film's job, with its own keyframes folder under ``--keyframes`` (or none)."""
    if options.keyframes is not None:
        options = replace(options, keyframes=keyframes_folder(options.keyframes, job.source))
    return FilmJob(job.source, job.target, options)


def _colorize_images(
    images: list[Job],
    colorizer: Colorizer,
    console: Console,
    quiet: bool,
    report: Callable[[str], None],
    hints: Path | None = None,
) -> int:
    """Colorize and write each image (a bar when there are several; ``hints`` for the one
    image); returns how many were written."""
    done = 0
    with Progress(
        TextColumn("[bold]images"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or len(images) < 2,
    ) as progress:
        task = progress.add_task("images", total=len(images))
        for job in images:
            with one_file(job.source, report):
                picture = read_image(job.source)
                hinted = read_hints(hints, picture.pixels.shape[:2]) if hints is not None else None
                rgb = colorize_picture(picture, colorizer, hinted)
                for notice in write_image(job.target, rgb, picture.alpha):
                    console.print(notice, highlight=False)
                done += 1
                if not quiet and len(images) < 2:
                    console.print(f"{job.source} -> {job.target}", highlight=False)
            progress.advance(task)
    return done


def _colorize_film(
    job: FilmJob, colorizer: Colorizer, console: Console, quiet: bool, report: Callable[[str], None]
) -> int:
    """One film on this machine; returns 1 when it was written. Ctrl-C ends the batch (exit 130)."""
    try:
        with one_file(job.source, lambda message: report(message + _unsaid_work(message, job.target))):
            try:
                summary = colorize_film(job, colorizer, console, quiet)
            except TruncatedFilmError as error:  # its kept work needs --accept-truncated to finish
                raise VidcolorError(str(error) + _kept_work(job.target, truncated=True)) from None
            console.print(summary, highlight=False)
            return 1
    except KeyboardInterrupt:
        report(f"{job.source}: interrupted; {job.target} was not written{_kept_work(job.target)}")
        raise SystemExit(130) from None
    return 0
