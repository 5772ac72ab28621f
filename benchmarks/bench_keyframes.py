"""Keyframes measured: each colour clip turned grey, colorized automatically, with its first
frame's truth as the only keyframe, and with a frame from 2 s later given as a loose reference
(named as the first frame); PSNR of each output against the truth, through the real CLI.

    python benchmarks/bench_keyframes.py                      # every colour clip, first 150 frames
    python benchmarks/bench_keyframes.py --clips ../shared/data/video/vid4-walk.mp4 --frames 60
    python benchmarks/bench_keyframes.py --speed ../shared/data/video/chaplin-bw.mp4
    python benchmarks/bench_keyframes.py --crf 12              # outputs at the clips' own CRF

Prints per clip: mean PSNR (dB) over the clip, the keyframe's own frame and the last frame, for
the automatic colours, the keyframe and the loose reference. ``--speed`` times the CLI on a film
automatically and with a keyframe at the start of every shot (the film's own frames, turned
grey, as a stand-in for coloured ones), alternately, ``--repeats`` times.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.clips import make_grey_copy  # noqa: E402

VIDEO = ROOT.parent / "shared" / "data" / "video"
LOOSE_SECONDS = 2.0
CUT_CHANGE = 0.12  # mean absolute luma change (of 1) between frames taken as a shot's start


def read_frames(path: Path, limit: int) -> tuple[list[np.ndarray], float]:
    """The first ``limit`` frames as ``(H, W, 3)`` uint8 RGB, and the frame rate."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 25)
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= limit:
                break
    return frames, rate


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(error, 1e-12)))


def colorize(grey: Path, target: Path, *args: str) -> float:
    """Run the CLI; returns its wall time (seconds)."""
    command = [sys.executable, "-m", "vidcolor", str(grey), "-o", str(target), "--overwrite", "--quiet", *args]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)}:\n{done.stderr}")
    return time.perf_counter() - start


def score_clip(
    clip: Path, limit: int, folder: Path, encoder: tuple[str, ...] = ()
) -> dict[str, tuple[float, float, float]]:
    """(mean, first, last) PSNR of each variant of one clip (``encoder``: CLI options for all)."""
    truth, rate = read_frames(clip, limit)
    grey = folder / f"{clip.stem}-grey.mp4"
    make_grey_copy(clip, grey, limit)
    exact, loose = folder / f"{clip.stem}-key", folder / f"{clip.stem}-loose"
    exact.mkdir()
    loose.mkdir()
    Image.fromarray(truth[0]).save(exact / "000000.png")
    later = min(len(truth) - 1, round(LOOSE_SECONDS * rate))
    Image.fromarray(truth[later]).save(loose / "000000.png")
    variants = {"automatic": (), "keyframe": ("--keyframes", str(exact)), "loose": ("--keyframes", str(loose))}
    scores = {}
    for name, args in variants.items():
        out = folder / f"{clip.stem}-{name}.mp4"
        colorize(grey, out, *args, *encoder)
        frames, _ = read_frames(out, limit)
        values = [psnr(f, t) for f, t in zip(frames, truth, strict=True)]
        scores[name] = (float(np.mean(values)), values[0], values[-1])
    return scores


def shot_starts(path: Path, folder: Path) -> Path:
    """A keyframe folder for ``path``: its own frame (as grey RGB) at the start of every shot."""
    folder.mkdir(parents=True, exist_ok=True)
    previous = None
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            luma = frame.to_ndarray(format="gray").astype(np.float32) / 255
            if previous is None or np.abs(luma - previous).mean() > CUT_CHANGE:
                Image.fromarray(frame.to_ndarray(format="rgb24")).save(folder / f"{index:06d}.png")
            previous = luma
    return folder


def speed(film: Path, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        keys = shot_starts(film, folder / "keys")
        print(f"{film.name}: {len(list(keys.iterdir()))} shots")
        frames = len(read_frames(film, 10**9)[0])
        for run in range(repeats):
            auto = colorize(film, folder / "auto.mp4")
            keyed = colorize(film, folder / "keyed.mp4", "--keyframes", str(keys))
            print(
                f"run {run + 1}: automatic {frames / auto:.1f} frames/s, with keyframes {frames / keyed:.1f} "
                f"frames/s: ratio {auto / keyed:.2f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", nargs="*", type=Path)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--speed", type=Path, help="time this film instead")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--crf", type=int, help="the outputs' CRF (default: the CLI's, 18); the clips were made at 12")
    args = parser.parse_args()
    if args.speed:
        speed(args.speed, args.repeats)
        return 0
    clips = args.clips or sorted(p for p in VIDEO.glob("*.mp4") if "bw" not in p.stem)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            scores = score_clip(clip, args.frames, Path(tmp), () if args.crf is None else ("--crf", str(args.crf)))
            rows.append(scores)
            auto, key, loose = scores["automatic"], scores["keyframe"], scores["loose"]
            print(
                f"{clip.stem}: automatic {auto[0]:.2f} (first {auto[1]:.2f}, last {auto[2]:.2f}); keyframe "
                f"{key[0]:.2f} ({key[1]:.2f}, {key[2]:.2f}): {key[0] - auto[0]:+.2f} dB, last {key[2] - auto[2]:+.2f}; "
                f"loose {loose[0]:.2f}: {loose[0] - auto[0]:+.2f} dB",
                flush=True,
            )
    gain = np.mean([r["keyframe"][0] - r["automatic"][0] for r in rows])
    last = np.mean([r["keyframe"][2] - r["automatic"][2] for r in rows])
    loose = np.mean([r["loose"][0] - r["automatic"][0] for r in rows])
    own = min(r["keyframe"][1] for r in rows)
    print(
        f"mean over clips: keyframe {gain:+.2f} dB (last frame {last:+.2f}), own frame >= {own:.2f}, loose {loose:+.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
