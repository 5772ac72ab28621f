"""The journal of a segmented film: which segments are finished, for which input and settings.

A film colorized in segments keeps its work in a hidden folder beside the target
(:func:`work_folder`): one file per finished segment and ``journal.json``, which records the
plan, each finished segment (its file, size, frames, encoder delay) and a fingerprint of
everything that changes the output (the input file, the model and runtime, the decoding, the
encoder settings, the segment length). A segment file is written (and synced) before its
journal entry, and both are replaced atomically, so after a crash, kill -9 or power loss every
entry names a whole file. Running the same command again keeps the finished segments; a
changed fingerprint starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from vidcolor.partial import write_atomically
from vidcolor.segments import Segment, SegmentResult, pack_segment

JOURNAL_NAME = "journal.json"
JOURNAL_VERSION = 1
# Bytes read from each end of the input for its fingerprint (with its size and mtime).
FINGERPRINT_SAMPLE = 1 << 20


def work_folder(target: Path) -> Path:
    """The hidden folder beside ``target`` that holds its segments and journal."""
    return target.with_name(f".{target.name}.vidcolor-work")


def input_fingerprint(path: Path) -> str:
    """A hash of a file's size, modification time and first and last MiB."""
    stat = path.stat()
    digest = hashlib.sha256(f"{stat.st_size}|{stat.st_mtime_ns}|".encode())
    with open(path, "rb") as file:
        digest.update(file.read(FINGERPRINT_SAMPLE))
        if stat.st_size > FINGERPRINT_SAMPLE:
            file.seek(max(FINGERPRINT_SAMPLE, stat.st_size - FINGERPRINT_SAMPLE))
            digest.update(file.read(FINGERPRINT_SAMPLE))
    return digest.hexdigest()


def film_fingerprint(source: Path, colours: str, settings: dict[str, object]) -> str:
    """The fingerprint of one film's output: its input, the colorizer's ``colours`` fingerprint
    (model, runtime, decoding) and the other ``settings`` that change the output (JSON-able)."""
    text = json.dumps({"input": input_fingerprint(source), "colours": colours, **settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Entry:
    """A finished segment as the journal records it."""

    file: str
    size: int
    frames: int
    delay: int
    video_end: float | None


@dataclass
class Journal:
    """One film's work folder and its journal (see the module's docstring)."""

    folder: Path
    fingerprint: str
    plan: list[Segment]
    done: dict[int, Entry] = field(default_factory=dict)

    @classmethod
    def resume(cls, folder: Path, fingerprint: str) -> tuple[Journal | None, str | None]:
        """The journal in ``folder`` if it is for this fingerprint, with the entries whose files
        are whole; else None. Also returns a notice when a journal was there but not usable."""
        path = folder / JOURNAL_NAME
        if not path.exists():
            return None, None
        try:
            data = json.loads(path.read_text())
            if data.get("version") != JOURNAL_VERSION:
                return None, "the unfinished work beside it is from another vidcolor version: starting afresh"
            if data["fingerprint"] != fingerprint:
                return None, ("the unfinished work beside it was for another input, model or settings: starting afresh")
            plan = [Segment.from_json(values) for values in data["plan"]]
            done = {int(k): Entry(**v) for k, v in data["done"].items()}
        except (OSError, ValueError, KeyError, TypeError) as error:
            return None, f"the journal of the unfinished work beside it is unreadable ({error}): starting afresh"
        journal = cls(folder, fingerprint, plan, done)
        journal.done = {i: e for i, e in done.items() if journal._whole(e)}
        return journal, None

    @classmethod
    def start(cls, folder: Path, fingerprint: str, plan: list[Segment]) -> Journal:
        """A new journal (any old work in ``folder`` removed)."""
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        journal = cls(folder, fingerprint, plan)
        journal._save()
        return journal

    def _whole(self, entry: Entry) -> bool:
        path = self.folder / entry.file
        return path.is_file() and path.stat().st_size == entry.size

    def missing(self) -> list[Segment]:
        """The planned segments not yet finished, in film order."""
        return [s for s in self.plan if s.index not in self.done]

    @property
    def frames_done(self) -> int:
        return sum(e.frames for e in self.done.values())

    def segment_path(self, index: int) -> Path:
        return self.folder / self.done[index].file

    def record(self, result: SegmentResult) -> None:
        """Write a finished segment's file, then its journal entry (both atomically)."""
        data = pack_segment(result.packets)
        name = f"segment-{result.segment.index:06d}.bin"
        write_atomically(self.folder / name, data)
        self.done[result.segment.index] = Entry(name, len(data), result.frames, result.delay, result.video_end)
        self._save()

    def _save(self) -> None:
        data = {
            "version": JOURNAL_VERSION,
            "fingerprint": self.fingerprint,
            "plan": [s.to_json() for s in self.plan],
            "done": {str(i): vars(e) for i, e in sorted(self.done.items())},
        }
        write_atomically(self.folder / JOURNAL_NAME, json.dumps(data, indent=1).encode())

    def remove(self) -> None:
        """Delete the work folder (the film is finished)."""
        shutil.rmtree(self.folder, ignore_errors=True)
