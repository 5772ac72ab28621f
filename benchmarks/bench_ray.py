"""Throughput of ``--engine ray`` with 1 and 2 workers beside the local engine, and the driver's memory.

    python benchmarks/bench_ray.py [--width 640 --height 360] [--seconds 40] [--workers 1,2]
        [--segment-seconds 10] [--long-seconds 160]

Generates a clip with audio (a keyframe every second), starts a local Ray head (all CPUs,
token authentication on), and runs the real command line on it: the local engine, then
``--engine ray --ray-address ... --workers N`` for each N. Prints frames/s over the whole
command (Ray's connection and the workers' model loading included) and as the film's own
summary states it, and the driver's peak resident memory. The driver's memory is then measured
again on a clip ``--long-seconds`` long: it should not grow with the film (at most one segment
per worker is held in the driver).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.peak_memory import cli_peak_mib  # noqa: E402
from tests.clips import make_clip  # noqa: E402

RAY_CLI = [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]


def film_fps(clip: Path, out: Path, *args: str) -> dict:
    """Run and parse the film's summary line (printed on stderr) for its frames and frames/s."""
    command = [sys.executable, "-m", "vidcolor", str(clip), "-o", str(out), "--overwrite", *args]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(result.stderr)
    match = re.search(r": (\d+) frames in ([\d.]+) s \(([\d.]+) fps\)", result.stderr)
    frames, seconds, fps = int(match.group(1)), float(match.group(2)), float(match.group(3))
    return {"frames": frames, "wall_fps": round(frames / wall, 1), "summary_fps": fps, "summary_s": seconds}


def start_ray() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    subprocess.run(
        [*RAY_CLI, "start", "--head", "--port", str(port), "--include-dashboard=false", "--disable-usage-stats"],
        check=True,
        capture_output=True,
    )
    return f"127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--seconds", type=int, default=40)
    parser.add_argument("--long-seconds", type=int, default=160)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--segment-seconds", default="10")
    args = parser.parse_args()
    results: dict[str, object] = {"clip": f"{args.width}x{args.height}, {args.seconds} s at {args.fps} fps"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip, long_clip = folder / "clip.mp4", folder / "long.mp4"
        common = {"width": args.width, "height": args.height, "fps": args.fps, "gop": args.fps, "audio": ["aac"]}
        make_clip(clip, frames=args.seconds * args.fps, **common)
        make_clip(long_clip, frames=args.long_seconds * args.fps, **common)
        segments = ("--segment-seconds", args.segment_seconds)
        results["local"] = film_fps(clip, folder / "local.mp4", *segments)
        print(json.dumps(results), flush=True)
        address = start_ray()
        try:
            for workers in [int(w) for w in args.workers.split(",")]:
                ray = ("--engine", "ray", "--ray-address", address, "--workers", str(workers), *segments)
                results[f"ray_{workers}_workers"] = film_fps(clip, folder / f"ray{workers}.mp4", *ray)
                print(json.dumps(results), flush=True)
            ray = ("--engine", "ray", "--ray-address", address, "--workers", "2", *segments)
            results["driver_peak_mib"] = {
                f"{args.seconds} s": round(cli_peak_mib(str(clip), "-o", str(folder / "m1.mp4"), "--overwrite", *ray)),
                f"{args.long_seconds} s": round(
                    cli_peak_mib(str(long_clip), "-o", str(folder / "m2.mp4"), "--overwrite", *ray)
                ),
            }
        finally:
            subprocess.run([*RAY_CLI, "stop", "--force"], capture_output=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
