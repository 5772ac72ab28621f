"""The journal of a segmented film: which segments are finished, for which input and settings.

A film colorized in segments keeps its work in a hidden folder beside the target
(:func:`work_folder`): one file per finished segment and ``journal.json``, which records the
plan, each finished segment (its file, size, frames, encoder delay) and a fingerprint of
everything that changes the output (the input file, the model and runtime, the decoding, the
encoder settings, the segment length). A segment file is written (and synced) before its
journal entry, and both are replaced atomically, so after a crash, kill -9 or power loss every
entry names a whole file. Running the same command again keeps the finished segments; a
changed fingerprint starts afresh.

A *segment file* holds a segment's encoded packets with their exact timestamps in the film's
time base (:func:`pack_segment`, :func:`read_segment`). A container would not keep them
exactly: NUT (tried) changed the time base and lost the first decode timestamps, and Matroska
keeps milliseconds, while the final film must carry the source's timestamps.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vidcolor.errors import VidcolorError
from vidcolor.film.segments import EncodedPacket, Segment, SegmentResult
from vidcolor.partial import write_atomically

JOURNAL_NAME = "journal.json"
JOURNAL_VERSION = 1
SEGMENT_FILE_MAGIC = b"vidcolor segment 1\n"
_PACKET_HEADER = struct.Struct("<qqqBI")  # pts, dts, duration, keyframe, payload size
_NO_TIME = -(2**63)
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


def pack_segment(packets: Iterable[EncodedPacket]) -> bytes:
    """A segment file's bytes: the magic line, then each packet's header and payload."""
    out = io.BytesIO()
    out.write(SEGMENT_FILE_MAGIC)
    for p in packets:
        stamps = (_NO_TIME if t is None else t for t in (p.pts, p.dts))
        out.write(_PACKET_HEADER.pack(*stamps, p.duration, int(p.keyframe), len(p.payload)))
        out.write(p.payload)
    return out.getvalue()


def read_segment(path: Path) -> Iterator[EncodedPacket]:
    """The packets of a segment file, in decode order.

    Raises:
        VidcolorError: the file is not a whole segment file.
    """
    with open(path, "rb") as file:
        if file.read(len(SEGMENT_FILE_MAGIC)) != SEGMENT_FILE_MAGIC:
            raise VidcolorError(f"{path}: not a vidcolor segment file")
        while header := file.read(_PACKET_HEADER.size):
            if len(header) < _PACKET_HEADER.size:
                raise VidcolorError(f"{path}: cut short")
            pts, dts, duration, keyframe, size = _PACKET_HEADER.unpack(header)
            payload = file.read(size)
            if len(payload) < size:
                raise VidcolorError(f"{path}: cut short")
            yield EncodedPacket(
                None if pts == _NO_TIME else pts, None if dts == _NO_TIME else dts, duration, bool(keyframe), payload
            )


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
