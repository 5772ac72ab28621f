"""What one film's run is asked to do: a :class:`FilmJob` (source, target and :class:`FilmOptions`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vidcolor.film.sink import EncoderSettings

DEFAULT_SEGMENT_SECONDS = 10.0


@dataclass(frozen=True)
class FilmOptions:
    """The choices of ``vidcolor FILM`` beyond the colours: encoder, batching, segments, resume."""

    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    batch_size: int = 8
    accept_truncated: bool = False  # a film shorter than declared: a notice instead of an error
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS  # 0: one pass, no resume
    resume: bool = True  # keep the finished segments of an earlier run with the same fingerprint
    keyframes: Path | None = None  # a folder of keyframes (vidcolor.keyframes) that colour their shots


@dataclass(frozen=True)
class FilmJob:
    """One film to colorize: ``source`` into ``target`` (picklable: Ray workers receive it)."""

    source: Path
    target: Path
    options: FilmOptions = field(default_factory=FilmOptions)
