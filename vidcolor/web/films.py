"""The page's films: frames to look at and to colour as keyframes, short previews, and the film
jobs, run one at a time by one worker thread through the command line's film engine
(:func:`vidcolor.film.engine.colorize_film`: segments, resume, keyframes alike).

State lives in :class:`FilmQueue` (the jobs, each a :class:`FilmTask` with its progress).
"""

from __future__ import annotations

import io
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import av
from rich.console import Console
from rich.progress import Progress

from vidcolor.batch import default_output
from vidcolor.colorizer import ColorizerSpec
from vidcolor.errors import VidcolorError
from vidcolor.film.engine import colorize_film
from vidcolor.film.job import FilmJob, FilmOptions
from vidcolor.film.pipeline import Failure
from vidcolor.film.source import SourceFilm
from vidcolor.image import read_image, write_image
from vidcolor.keyframes import export_frames, keyframe_files
from vidcolor.web.files import Refused
from vidcolor.web.photos import ColorizerCache, colour_picture

PREVIEW_SECONDS = 3.0
LONGEST_PREVIEW = 10.0
KEYFRAMES_FOLDER = "keyframes"  # DIR/keyframes/<film stem>/: the layout `--keyframes DIR/keyframes` reads


def quiet_console() -> Console:
    """A console for the engine's notices and summary when the page, not a terminal, reports."""
    return Console(file=io.StringIO(), quiet=True)


def keyframes_of(root: Path, film: Path) -> Path:
    """The folder of ``film``'s keyframes made on the page."""
    return root / KEYFRAMES_FOLDER / film.stem


def page_keyframes(root: Path, film: Path) -> list[Path]:
    """The keyframes made for ``film`` so far (none when its folder is missing or empty).

    Raises:
        VidcolorError: a file there that is not a keyframe (named).
    """
    folder = keyframes_of(root, film)
    if not folder.is_dir() or not any(p.is_file() and not p.name.startswith(".") for p in folder.iterdir()):
        return []
    return [keyframe.path for keyframe in keyframe_files(folder)]


def film_frame(film: Path, seconds: float, folder: Path) -> Path:
    """The grey frame of ``film`` nearest ``seconds``, as ``t<its time>.png`` in ``folder``
    (:func:`vidcolor.keyframes.export_frames`). Raises :class:`VidcolorError` past the end."""
    return export_frames(film, [seconds], folder)[0]


def colour_keyframe(frame: Path, hints: bytes, folder: Path, colorizers: ColorizerCache, spec: ColorizerSpec) -> Path:
    """Colorize an exported grey ``frame`` with the page's hint strokes (a PNG of its size,
    transparent = no hint) and keep it in ``folder`` under the frame's name, the keyframe the
    film's run reads; returns its path.

    Raises:
        Refused: hints that are not a picture of the frame's size.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rgb = colour_picture(read_image(frame), colorizers, spec, hints, folder / f".{frame.stem}.hints.png")
    target = folder / frame.name
    write_image(target, rgb)
    return target


def cut_opening(film: Path, seconds: float, target: Path) -> None:
    """Copy the first ``seconds`` of ``film`` (video and audio packets as they are, timestamps
    kept) into the Matroska file ``target``."""
    with av.open(str(film)) as source, av.open(str(target), "w", format="matroska") as out:
        kept = [s for s in source.streams if s.type in ("video", "audio")]
        streams = {s.index: out.add_stream_from_template(s) for s in kept}
        video = source.streams.video[0]
        for packet in source.demux(*kept):
            if packet.dts is None or packet.size == 0:
                continue
            if packet.stream.index == video.index and packet.pts is not None:
                if packet.pts * packet.time_base >= seconds:
                    break
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


@dataclass
class FilmTask:
    """One film job of the page: what it colours, its state and progress, and its stop flag."""

    id: str
    source: Path
    target: Path
    spec: ColorizerSpec
    options: FilmOptions
    label: str  # the film as the page names it
    state: str = "queued"  # queued, running, done, failed, cancelled
    message: str = ""
    frames: int = 0
    total: int | None = None
    fps: float = 0.0
    started: float | None = None
    failure: Failure = field(default_factory=Failure)
    progress: Progress = field(default_factory=lambda: Progress(disable=True))

    def snapshot(self) -> dict:
        """What the page shows: state, frames done of the total, frames per second and seconds left."""
        if self.state == "running" and self.progress.tasks:
            task = self.progress.tasks[-1]
            self.frames, self.total = int(task.completed), int(task.total) if task.total else None
            elapsed = time.perf_counter() - (self.started or time.perf_counter())
            self.fps = self.frames / elapsed if elapsed > 0 else 0.0
        left = None
        if self.state == "running" and self.total and self.fps > 0:
            left = max(0.0, (self.total - self.frames) / self.fps)
        return {
            "id": self.id,
            "film": self.label,
            "state": self.state,
            "message": self.message,
            "frames": self.frames,
            "total": self.total,
            "fps": round(self.fps, 1),
            "eta": None if left is None else round(left, 1),
            "output": self.target.name,
        }


class FilmQueue:
    """Film jobs run one after another by one worker thread (started on the first job)."""

    def __init__(self) -> None:
        self.tasks: dict[str, FilmTask] = {}
        self.waiting: queue.Queue[FilmTask] = queue.Queue()
        self.colorizers = ColorizerCache(keep=1)  # the worker's own: photos never wait on a film
        self.worker: threading.Thread | None = None
        self.lock = threading.Lock()

    def submit(
        self, source: Path, label: str, spec: ColorizerSpec, options: FilmOptions, overwrite: bool = False
    ) -> FilmTask:
        """Queue ``source`` to be colorized into ``NAME_color.EXT`` beside it (the command line's name).

        Raises:
            Refused: the output exists (and not ``overwrite``), or the film is queued or running already.
        """
        target = default_output(source, "video")
        with self.lock:
            if any(t.source == source and t.state in ("queued", "running") for t in self.tasks.values()):
                raise Refused(f"{label}: already queued")
            if target.exists() and not overwrite:
                raise Refused(f"{label}: {target.name} exists (tick 'overwrite' to replace it)")
            task = FilmTask(uuid.uuid4().hex[:10], source, target, spec, options, label)
            self.tasks[task.id] = task
            if self.worker is None:
                self.worker = threading.Thread(target=self._work, name="vidcolor-films", daemon=True)
                self.worker.start()
        self.waiting.put(task)
        return task

    def get(self, task_id: str) -> FilmTask:
        if task_id not in self.tasks:
            raise Refused(f"no job {task_id!r}")
        return self.tasks[task_id]

    def cancel(self, task_id: str) -> FilmTask:
        """Stop a running job (its finished segments are kept for a rerun) or drop a queued one."""
        task = self.get(task_id)
        with self.lock:
            if task.state == "queued":
                task.state, task.message = "cancelled", "cancelled before it started"
            elif task.state == "running":
                task.failure.record(KeyboardInterrupt())
        return task

    def snapshot(self) -> list[dict]:
        """Every job's :meth:`FilmTask.snapshot`, oldest first."""
        return [task.snapshot() for task in list(self.tasks.values())]

    def _work(self) -> None:
        while True:
            task = self.waiting.get()
            with self.lock:
                if task.state != "queued":
                    continue
                task.state, task.started = "running", time.perf_counter()
            self._run(task)

    def _run(self, task: FilmTask) -> None:
        console = quiet_console()  # the summary goes to the page
        try:
            with self.colorizers.lock:
                colorizer = self.colorizers.use(task.spec)
                summary = colorize_film(
                    FilmJob(task.source, task.target, task.options),
                    colorizer,
                    console,
                    quiet=True,
                    failure=task.failure,
                    progress=task.progress,
                )
            task.snapshot()
            task.state, task.message = "done", summary
        except KeyboardInterrupt:
            task.state = "cancelled"
            task.message = "cancelled; its finished segments are kept: start it again to resume"
        except VidcolorError as error:
            task.state, task.message = "failed", str(error)
        except Exception as error:  # noqa: BLE001 - shown on the page, the server goes on
            task.state, task.message = "failed", f"{type(error).__name__}: {error}"


def film_facts(film: Path) -> dict:
    """What the page shows of a film: duration (s), frame rate, size, frames (declared)."""
    with SourceFilm.open(film) as source:
        end = source.declared_end[0] if source.declared_end is not None else None
        return {
            "duration": end,
            "fps": float(1 / source.frame_seconds) if source.frame_seconds else None,
            "width": source.stream.codec_context.width,
            "height": source.stream.codec_context.height,
            "frames": source.expected_frames,
        }
