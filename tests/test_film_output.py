"""The output side of a film: each other stream's fate, the packet-size test, the temporary file."""

from __future__ import annotations

import av

from tests.clips import make_clip
from vidcolor.film.sink import EncoderSettings, FilmOutput, StreamFate
from vidcolor.film.source import SourceFilm


def test_each_stream_has_one_fate_and_empty_packets_are_skipped(tmp_path):
    source = tmp_path / "in.mkv"
    make_clip(source, frames=4, audio=("aac", "pcm_s16le"), subtitles=True)
    target = tmp_path / "out.mp4"
    with SourceFilm.open(source) as film:
        output = FilmOutput(target, film, EncoderSettings(preset="ultrafast"))
        try:
            kinds = {
                film.container.streams[i].type + ":" + film.container.streams[i].codec_context.name: other.fate
                for i, other in output.others.items()
            }
            assert kinds["audio:aac"] is StreamFate.COPY
            assert kinds["audio:pcm_s16le"] is StreamFate.TRANSCODE  # MP4 cannot hold raw PCM as is
            assert [fate for kind, fate in kinds.items() if kind.startswith("subtitle")] == [StreamFate.DROP]
            assert any("transcoded audio stream" in notice for notice in output.notices)
            assert any("dropped subtitle stream" in notice for notice in output.notices)

            audio = film.container.streams.audio[0]
            subtitle = film.container.streams.subtitles[0]
            payload = av.Packet(b"\x00" * 16)
            payload.stream = audio
            assert payload.dts is None  # a packet without timestamps still has a payload to keep
            assert output.keeps(payload)
            empty = av.Packet()
            empty.stream = audio
            assert not output.keeps(empty)  # the flushing packets demux() ends each stream with
            dropped = av.Packet(b"\x00" * 16)
            dropped.stream = subtitle
            assert not output.keeps(dropped)
            assert not target.exists()
        finally:
            output.discard()
    assert not output.partial.exists() and not target.exists()
