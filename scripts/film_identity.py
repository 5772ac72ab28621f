"""Colorize films through the CLI in every mode and hash each output's decoded frames.

Checks that a change to the film engine keeps the output: run it before the change with
``--save before.json`` and after it with ``--compare before.json``. Modes: one pass
(``--segment-seconds 0``), in segments, resumed (killed with SIGKILL after the first segments,
then run again) and on Ray (``--engine ray``, when Ray is installed).

    python scripts/film_identity.py --save /tmp/before.json
    python scripts/film_identity.py --compare /tmp/before.json

The films: a generated 10 s clip with audio (tests/clips.py) and, when ``../shared`` is beside
the project, the first seconds of the Chaplin film. Prints one line per film and mode and exits
1 when a compared mode's frames differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.clips import make_clip  # noqa: E402

CHAPLIN = ROOT.parent / "shared" / "data" / "video" / "chaplin-bw.mp4"
SEGMENT = ("--segment-seconds", "1")
JOURNAL = "journal.json"


def frame_hashes(path: Path) -> list[str]:
    """The sha256 of each decoded frame's planes (in presentation order)."""
    with av.open(str(path)) as container:
        return [
            hashlib.sha256(b"".join(bytes(p) for p in f.planes)).hexdigest()[:16] for f in container.decode(video=0)
        ]


def cut(source: Path, target: Path, seconds: float) -> None:
    """The first ``seconds`` of ``source``: the video re-encoded with a keyframe every second
    (so that it has segments), the audio copied."""
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        film = inp.streams.video[0]
        video = out.add_stream("libx264", rate=film.average_rate, options={"g": "25", "crf": "18"})
        video.width, video.height, video.pix_fmt = film.width, film.height, "yuv420p"
        video.time_base = film.time_base
        audio = out.add_stream_from_template(inp.streams.audio[0])
        for packet in inp.demux(film, inp.streams.audio[0]):
            if packet.pts is None or packet.pts * packet.time_base >= seconds:
                continue
            if packet.stream is film:
                for frame in packet.decode():
                    frame.pict_type = av.video.frame.PictureType.NONE
                    out.mux(video.encode(frame))
            else:
                packet.stream = audio
                out.mux(packet)
        out.mux(video.encode(None))


def cli(source: Path, target: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "vidcolor", str(source), "-o", str(target), "--overwrite", "--quiet", *args]


def run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")


def resumed(source: Path, target: Path, args: tuple[str, ...]) -> None:
    """Run in segments, SIGKILL once two segments are journalled (the journal then cut back to
    those two), then run again to the end."""
    journal = target.with_name(f".{target.name}.vidcolor-work") / JOURNAL
    process = subprocess.Popen(cli(source, target, *args, *SEGMENT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if len(json.loads(journal.read_text())["done"]) >= 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    if process.poll() is not None:
        raise SystemExit("the run ended before it could be killed: use a longer film")
    process.send_signal(signal.SIGKILL)
    process.communicate()
    # keep exactly the first two segments, so that every run resumes from the same point
    data = json.loads(journal.read_text())
    data["done"] = {k: v for k, v in data["done"].items() if int(k) < 2}
    journal.write_text(json.dumps(data))
    run(cli(source, target, *args, *SEGMENT))


def modes(source: Path, folder: Path, args: tuple[str, ...]) -> dict[str, list[str]]:
    """Each mode's frame hashes for ``source``."""
    ray = subprocess.run([sys.executable, "-c", "import ray"], capture_output=True).returncode == 0
    out: dict[str, list[str]] = {}
    suffix = source.suffix
    for mode in ("one-pass", "segments", "resumed", "ray"):
        target = folder / f"{source.stem}-{mode}{suffix}"
        if mode == "one-pass":
            run(cli(source, target, *args, "--segment-seconds", "0"))
        elif mode == "segments":
            run(cli(source, target, *args, *SEGMENT))
        elif mode == "resumed":
            resumed(source, target, args)
        elif ray:
            run(cli(source, target, *args, *SEGMENT, "--engine", "ray", "--workers", "1"))
        else:
            continue
        out[mode] = frame_hashes(target)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path)
    group.add_argument("--compare", type=Path)
    parser.add_argument("--no-chaplin", action="store_true")
    options = parser.parse_args()
    results: dict[str, dict[str, list[str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = folder / "clip.mp4"
        make_clip(clip, frames=240, width=128, height=96)
        results["clip"] = modes(clip, folder, ("--size", "96"))
        results["clip-mrf"] = modes(clip, folder, ("--size", "96", "--decode", "mrf"))
        if CHAPLIN.exists() and not options.no_chaplin:
            short = folder / "chaplin.mp4"
            cut(CHAPLIN, short, 4.0)
            results["chaplin"] = modes(short, folder, ())
    if options.save:
        options.save.write_text(json.dumps(results, indent=1))
        for film, by_mode in results.items():
            print(film, {mode: len(hashes) for mode, hashes in by_mode.items()})
        return 0
    before = json.loads(options.compare.read_text())
    failed = False
    for film, by_mode in results.items():
        for mode, hashes in by_mode.items():
            old = before.get(film, {}).get(mode)
            same = old == hashes
            failed |= old is not None and not same
            verdict = "no record" if old is None else ("identical" if same else "DIFFERENT")
            print(f"{film} {mode}: {len(hashes)} frames, {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
