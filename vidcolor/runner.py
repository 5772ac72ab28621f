"""``vidcolor INPUT...``: tell images from videos, choose outputs, colorize, report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from vidcolor.errors import VidcolorError
from vidcolor.image import IMAGE_SUFFIXES

# ffmpeg demuxers that take any file by its name or as raw bytes: never a film.
NOT_VIDEO_FORMATS = {"image2", "tty", "data", "rawvideo", "bin"}
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".ogv"}


def sniff_kind(path: Path) -> str:
    """``"image"`` or ``"video"``, decided by the file's content.

    Raises:
        VidcolorError: missing, empty, a folder, or neither an image nor a video.
    """
    if not path.exists():
        raise VidcolorError(f"{path}: no such file")
    if path.is_dir():
        raise VidcolorError(f"{path}: is a folder")
    if path.stat().st_size == 0:
        raise VidcolorError(f"{path}: empty file")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) == 1 or image.format not in ("GIF", "WEBP", "PNG"):
                return "image"
    except UnidentifiedImageError:
        pass
    except OSError as error:
        raise VidcolorError(f"{path}: unreadable or truncated image ({error})") from None
    import av

    try:
        with av.open(str(path)) as container:
            name = container.format.name
            if name in NOT_VIDEO_FORMATS or name.endswith("_pipe"):
                raise VidcolorError(f"{path}: neither an image nor a video vidcolor can read")
            if container.streams.video:
                return "video"
            raise VidcolorError(f"{path}: has no video stream")
    except av.error.FFmpegError:
        raise VidcolorError(f"{path}: neither an image nor a video vidcolor can read") from None


def default_output(path: Path, kind: str, folder: Path | None = None) -> Path:
    """``name_color.ext`` beside the input (or in ``folder``); keeps a known extension."""
    suffix = path.suffix.lower()
    if kind == "image" and suffix not in IMAGE_SUFFIXES:
        suffix = ".png"
    if kind == "video" and suffix not in VIDEO_SUFFIXES:
        suffix = ".mkv"
    name = f"{path.stem}_color{suffix if suffix != path.suffix.lower() else path.suffix}"
    return (folder or path.parent) / name


@dataclass
class Job:
    source: Path
    target: Path
    kind: str


def expand_inputs(inputs: list[Path], recursive: bool = False, report=None) -> list[Path]:
    """Folders become the image and video files they hold (sorted; sub-folders too if ``recursive``).

    A folder with no image or video file is passed to ``report`` (a callable taking the
    message) and skipped; without ``report`` it raises :class:`VidcolorError`.
    """
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            candidates = item.rglob("*") if recursive else item.iterdir()
            found = sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
            if not found:
                message = f"{item}: no image or video files in this folder"
                if report is None:
                    raise VidcolorError(message)
                report(message)
            files += found
        else:
            files.append(item)
    return files


def plan_jobs(inputs: list[Path], output: Path | None, overwrite: bool, report) -> list[Job]:
    """Pair each input with its output; bad inputs are reported and left out."""
    files = expand_inputs(inputs, report=report)
    several = len(files) > 1 or any(p.is_dir() for p in inputs)
    folder = None
    if output is not None and (several or output.is_dir() or (not output.suffix and not output.exists())):
        folder = output
        if folder.exists() and not folder.is_dir():
            raise VidcolorError(f"{folder}: several inputs need -o to be a folder")
        folder.mkdir(parents=True, exist_ok=True)
    jobs: list[Job] = []
    for source in files:
        try:
            kind = sniff_kind(source)
            target = output if output is not None and folder is None else default_output(source, kind, folder)
            if target.exists() and target.resolve() == source.resolve():
                raise VidcolorError(f"{source}: the output would overwrite the input")
            if target.exists() and not overwrite:
                raise VidcolorError(f"{target}: exists (use --overwrite to replace it)")
            if not target.parent.exists():
                raise VidcolorError(f"{target}: folder {target.parent} does not exist")
            jobs.append(Job(source, target, kind))
        except VidcolorError as error:
            report(str(error))
    return jobs


def run_colorize(
    inputs: list[Path],
    output: Path | None,
    *,
    model: str,
    size: int,
    device: str,
    decode_method: str | None,
    temperature: float | None,
    overwrite: bool,
    quiet: bool,
    video_options=None,
    mrf=None,
    temporal: bool = True,
    reference: Path | None = None,
) -> int:
    """Colorize every input; returns the number of failures (errors go to stderr)."""
    console = Console(stderr=True, soft_wrap=True)
    quiet = quiet or not console.is_terminal
    failures = 0

    def report(message: str) -> None:
        nonlocal failures
        failures += 1
        console.print(f"[red]vidcolor: error:[/red] {message}", highlight=False, soft_wrap=True)

    try:
        jobs = plan_jobs(inputs, output, overwrite, report)
    except VidcolorError as error:
        report(str(error))
        return failures
    if not jobs:
        console.print(f"nothing colorized ({failures} failed)", highlight=False)
        return failures

    from vidcolor.pipeline_setup import build_colorizer

    try:
        from vidcolor.mrf import MRFSettings

        colorizer = build_colorizer(
            model, size, device, decode_method, temperature, mrf or MRFSettings(), temporal, reference
        )
    except VidcolorError as error:
        report(str(error))
        return failures

    images = [job for job in jobs if job.kind == "image"]
    videos = [job for job in jobs if job.kind == "video"]
    done = 0
    if images:
        from vidcolor.image import colorize_picture, read_image, write_image

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
                try:
                    picture = read_image(job.source)
                    rgb = colorize_picture(picture, colorizer)
                    for notice in write_image(job.target, rgb, picture.alpha, picture.bits):
                        console.print(notice, highlight=False)
                    done += 1
                    if not quiet and len(images) < 2:
                        console.print(f"{job.source} -> {job.target}", highlight=False)
                except VidcolorError as error:
                    report(str(error))
                progress.advance(task)
    for job in videos:
        from vidcolor.video import colorize_video

        try:
            summary = colorize_video(
                job.source, job.target, colorizer, quiet=quiet, console=console, options=video_options
            )
            console.print(summary, highlight=False)
            done += 1
        except VidcolorError as error:
            report(str(error))
        except KeyboardInterrupt:
            report(f"{job.source}: interrupted; {job.target} was not written")
            raise SystemExit(130) from None
    console.print(
        f"colorized {done} of {done + failures} file(s)" + (f", {failures} failed" if failures else ""), highlight=False
    )
    return failures
