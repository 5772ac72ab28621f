"""Randomly damaged films and photos (seeded): each ends in a good output or a one-line error.

Damage: truncation, flipped bytes, dropped packets. A damaged file must give either exit-0-style
success (a film with strictly increasing, unique timestamps and at least the frames FFmpeg can
decode from it; a photo that opens) or a one-line error naming it and no output; never a
traceback, never a partial file.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

from tests.clips import make_clip
from tests.conftest import run_cli

SEED = 20261125


def drop_packets(source: Path, target: Path, rng: np.random.Generator) -> None:
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.size and rng.random() > 0.15:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)


def damage(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    if kind == "truncate":
        return data[: int(len(data) * rng.uniform(0.2, 0.97))]
    flipped = bytearray(data)
    for offset in rng.integers(len(data) // 10, len(data), rng.integers(1, 40)):
        flipped[offset] ^= int(rng.integers(1, 256))
    return bytes(flipped)


def decodable_frames(path: Path) -> int:
    count = 0
    try:
        with av.open(str(path)) as container:
            for packet in container.demux(video=0):
                try:
                    count += len(packet.decode())
                except av.error.FFmpegError:
                    continue
    except (av.error.FFmpegError, IndexError):
        return 0
    return count


def test_damaged_films_and_photos_end_in_an_output_or_a_one_line_error(tmp_path):
    rng = np.random.default_rng(SEED)
    inputs = tmp_path / "in"
    inputs.mkdir()
    clean_film = tmp_path / "clean.mkv"
    make_clip(clean_film, frames=30, width=64, height=48, audio=("aac",))
    clean_mp4 = tmp_path / "clean.mp4"
    make_clip(clean_mp4, frames=30, width=64, height=48, audio=("aac",))
    photo = np.random.default_rng(1).integers(0, 256, (48, 64, 3), np.uint8)
    Image.fromarray(photo).save(tmp_path / "clean.jpg", quality=90)
    Image.fromarray(photo).save(tmp_path / "clean.png")
    names = []
    for index in range(16):
        kind = ["truncate", "flip", "drop"][index % 3]
        clean = [clean_film, clean_mp4, tmp_path / "clean.jpg", tmp_path / "clean.png"][index % 4]
        target = inputs / f"d{index:02d}_{kind}{clean.suffix}"
        if kind == "drop" and clean.suffix in (".mkv", ".mp4"):
            drop_packets(clean, target, rng)
        else:
            target.write_bytes(damage(clean.read_bytes(), "truncate" if kind == "truncate" else "flip", rng))
        names.append(target)
    out = tmp_path / "out"
    result = run_cli(str(inputs), "-o", str(out))
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    for source in names:
        made = out / f"{source.stem}_color{source.suffix}"
        failed = [line for line in errors if source.name in line]
        if made.exists():
            assert not failed, (source.name, failed)
            if source.suffix in (".jpg", ".png"):
                with Image.open(made) as image:
                    image.load()
            else:
                with av.open(str(made)) as container:
                    times = [f.pts for f in container.decode(video=0)]
                assert times == sorted(set(times)), source.name  # strictly increasing, none twice
                assert len(times) >= decodable_frames(source), source.name
        else:
            assert len(failed) == 1, (source.name, result.stderr)
    assert len(errors) == sum(not (out / f"{s.stem}_color{s.suffix}").exists() for s in names)
    assert result.returncode == (1 if errors else 0)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no partial files
