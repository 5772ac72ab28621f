"""Peak memory of colorizing a grey 8-bit photo, in bytes per pixel above the program's baseline.

    python benchmarks/bench_photo_memory.py [--megapixels 4,25,100] [--format jpg]

For each size a smooth grey photo is written, colorized by the real command line in a child
process (default model and decoding), and its peak RSS compared with that of colorizing a
64x64 photo (the baseline: Python, torch, the model, the runtime). Target (issue 11): at most
40 bytes per pixel above the baseline, up to a 100-megapixel scan.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.peak_memory import cli_peak_mib  # noqa: E402


def grey_photo(path: Path, megapixels: float) -> tuple[int, int]:
    """Write a smooth grey photo of about ``megapixels`` (4:3); returns (width, height)."""
    height = int(round((megapixels * 1e6 * 3 / 4) ** 0.5))
    width = int(round(height * 4 / 3))
    rows = np.linspace(0, 3 * np.pi, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 5 * np.pi, width, dtype=np.float32)[None, :]
    grey = (127.5 + 60 * np.sin(rows) + 60 * np.cos(cols)).astype(np.uint8)
    Image.fromarray(grey).save(path, quality=90)
    return width, height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", default="4,25,100")
    parser.add_argument("--format", default="jpg", choices=("jpg", "png", "tif"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        grey_photo(folder / f"tiny.{args.format}", 64 * 64 / 1e6)
        baseline = cli_peak_mib(str(folder / f"tiny.{args.format}"), "-o", str(folder / f"tiny_c.{args.format}"))
        print(f"baseline (64x64): {baseline:.0f} MiB")
        print(f"{'photo':>16} {'pixels':>12} {'peak MiB':>9} {'above baseline':>15} {'bytes/pixel':>12} {'seconds':>8}")
        for megapixels in (float(m) for m in args.megapixels.split(",")):
            source = folder / f"p{megapixels:g}.{args.format}"
            width, height = grey_photo(source, megapixels)
            start = time.perf_counter()
            peak = cli_peak_mib(str(source), "-o", str(folder / f"c{megapixels:g}.{args.format}"))
            seconds = time.perf_counter() - start
            pixels = width * height
            above = (peak - baseline) * 2**20
            print(
                f"{width:>7}x{height:<8} {pixels:>12,} {peak:>9.0f} {above / 2**20:>11.0f} MiB "
                f"{above / pixels:>12.1f} {seconds:>8.1f}"
            )
            source.unlink()


if __name__ == "__main__":
    main()
