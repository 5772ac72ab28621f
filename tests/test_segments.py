"""Segments: planning at keyframes, segment files, the journal, one decode order for the film."""

from __future__ import annotations

import pytest

from tests.clips import make_clip
from vidcolor.errors import VidcolorError
from vidcolor.film.assembly import film_decode_times
from vidcolor.film.journal import Journal, film_fingerprint, pack_segment, read_segment, work_folder
from vidcolor.film.segments import (
    EncodedPacket,
    Segment,
    SegmentResult,
    choose_boundaries,
    plan_segments,
    reorder_delay,
    runs_of,
)


def test_boundaries_are_keyframes_at_least_a_segment_apart():
    keyframes = [0, 10, 25, 31, 40, 52, 75, 80]
    assert choose_boundaries(keyframes, 20) == [25, 52, 75]
    assert choose_boundaries(keyframes, 100) == []
    assert choose_boundaries([], 5) == []


def test_plan_of_a_generated_film(tmp_path):
    path = tmp_path / "film.mp4"
    make_clip(path, frames=100, fps=25, gop=25, audio=())
    plan = plan_segments(path, 1.0, warmup_frames=4)
    # MP4 keeps this film in a time base of 1/12800 (512 ticks a frame): keyframes every 12800
    second = 12800
    bounds = [None, second, 2 * second, 3 * second, None]
    assert [(s.start, s.end) for s in plan] == list(zip(bounds, bounds[1:], strict=False))
    assert plan[0].warmup is None and [s.warmup for s in plan[1:]] == [k * second - 4 * 512 for k in (1, 2, 3)]
    assert plan[1].holds(second) and plan[1].holds(2 * second - 1)
    assert not plan[1].holds(2 * second) and not plan[1].holds(second - 1)
    assert len(plan_segments(path, 10.0)) == 1


def test_plan_of_an_unreadable_file_is_an_error(tmp_path):
    path = tmp_path / "film.mp4"
    path.write_bytes(b"not a film")
    with pytest.raises(VidcolorError, match="cannot plan segments"):
        plan_segments(path, 1.0)


def _packets(pts: list[int]) -> list[EncodedPacket]:
    return [EncodedPacket(p, None, 1, i == 0, bytes([i % 256]) * (i + 1)) for i, p in enumerate(pts)]


def test_segment_file_round_trip_and_a_cut_file(tmp_path):
    packets = [*_packets([0, 3, 1, 2]), EncodedPacket(None, -5, 0, False, b"")]
    path = tmp_path / "segment.bin"
    path.write_bytes(pack_segment(packets))
    assert list(read_segment(path)) == packets
    path.write_bytes(pack_segment(packets)[:-3])
    with pytest.raises(VidcolorError, match="cut short"):
        list(read_segment(path))
    path.write_bytes(b"something else")
    with pytest.raises(VidcolorError, match="not a vidcolor segment file"):
        list(read_segment(path))


def test_reorder_delay():
    assert reorder_delay([0, 1, 2, 3]) == 0
    assert reorder_delay([0, 2, 1, 3]) == 1  # one B-frame
    assert reorder_delay([0, 4, 2, 1, 3, 8, 6, 5, 7]) == 2  # B-pyramid
    assert reorder_delay([]) == 0


@pytest.mark.parametrize("pattern", [[0, 4, 2, 1, 3], [0, 2, 1, 4, 3], [0, 1, 2, 3, 4]])
def test_film_decode_times_are_increasing_and_never_after_the_frame(pattern):
    # three segments of a B-framed stream, each starting at its own keyframe, 10 ticks a frame
    segments = [[10 * (5 * k + i) for i in pattern] for k in range(3)]
    delay = max(reorder_delay(s) for s in segments)
    timed = list(film_decode_times((_packets(s) for s in segments), delay, 10))
    dts = [d for _, d in timed]
    assert [p.pts for p, _ in timed] == [p for s in segments for p in s]
    assert all(a < b for a, b in zip(dts, dts[1:], strict=False))
    assert all(d <= p.pts for p, d in timed)
    # where nothing reorders the decode times are the frames' own
    if delay == 0:
        assert dts == [p.pts for p, _ in timed]


def _result(segment: Segment, frames: int) -> SegmentResult:
    return SegmentResult(segment, _packets(list(range(frames))), frames, frames / 25)


def test_journal_keeps_whole_segments_and_refuses_other_fingerprints(tmp_path):
    folder = work_folder(tmp_path / "out.mp4")
    assert folder.parent == tmp_path and folder.name.startswith(".")
    plan = [Segment(0, None, 10, None), Segment(1, 10, 20, 6), Segment(2, 20, None, 16)]
    journal = Journal.start(folder, "abc", plan)
    journal.record(_result(plan[0], 10))
    journal.record(_result(plan[2], 7))
    again, notice = Journal.resume(folder, "abc")
    assert notice is None and again.plan == plan and sorted(again.done) == [0, 2]
    assert again.missing() == [plan[1]] and again.frames_done == 17
    # a segment file that does not match its entry (cut by a crash of the disk) is redone
    (folder / again.done[2].file).write_bytes(b"short")
    assert sorted(Journal.resume(folder, "abc")[0].done) == [0]
    other, notice = Journal.resume(folder, "xyz")
    assert other is None and "another input, model or settings" in notice
    (folder / "journal.json").write_text("{")
    broken, notice = Journal.resume(folder, "abc")
    assert broken is None and "unreadable" in notice
    assert Journal.resume(tmp_path / "nothing", "abc") == (None, None)


def test_fingerprint_follows_the_input_and_the_settings(tmp_path):
    source = tmp_path / "film.mp4"
    source.write_bytes(b"a" * 5000)
    base = film_fingerprint(source, "model-1", {"crf": 18})
    assert film_fingerprint(source, "model-1", {"crf": 18}) == base
    assert film_fingerprint(source, "model-2", {"crf": 18}) != base
    assert film_fingerprint(source, "model-1", {"crf": 20}) != base
    source.write_bytes(b"a" * 4999 + b"b")
    assert film_fingerprint(source, "model-1", {"crf": 18}) != base


def test_missing_segments_run_in_consecutive_stretches():
    segments = [Segment(i, i * 10, i * 10 + 10, None) for i in (0, 1, 3, 4, 5, 7)]
    assert [[s.index for s in run] for run in runs_of(segments)] == [[0, 1], [3, 4, 5], [7]]
    assert runs_of([]) == []
