"""What a film's run did, counted and said in one line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunCounts:
    """What colorizing one or more spans of a film did: frames written, warm-up frames, decode
    events, scene cuts."""

    frames: int = 0
    warmup: int = 0
    decode_errors: int = 0
    repeated: int = 0
    late: int = 0
    cuts: int = 0

    def add(self, other: RunCounts) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class FilmReport:
    """What a film's run did: frames in the output, packets of other streams copied, the run's
    counts, and a phrase about its segments (empty in one pass)."""

    frames: int
    copied: int
    counts: RunCounts = field(default_factory=RunCounts)
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


def segments_phrase(segments: int, kept: int, kept_frames: int, counts: RunCounts) -> str:
    """What a segmented run did, for its summary: segments, those kept, frames done now."""
    phrase = f"; {segments} segment{'s' if segments != 1 else ''}"
    if kept:
        phrase += f", {kept} of them ({kept_frames} frames) kept from an earlier run"
    return phrase + f"; {counts.frames} frames colorized now, {counts.warmup} of warm-up"
