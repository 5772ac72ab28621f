"""Frames/s of the shipped network alone at 256x256 on the CPU (target: >= 10 on two cores).

    python benchmarks/bench_model.py [--threads 2] [--size 256]

Times the forward pass of the default model (batch 1 and batch 8) and of the whole colorizer
(resize, network, decoding) after a warm-up; prints the best of five runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vidcolor.colorizer import build_colorizer  # noqa: E402


def best_rate(function, frames: int, repeats: int = 5) -> float:
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return frames / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    colorizer = build_colorizer("default", args.size, "cpu", None, None)
    model = colorizer.model
    parameters = sum(p.numel() for p in model.parameters())
    print(f"default model: {parameters / 1e6:.2f} M parameters, {torch.get_num_threads()} CPU threads, {args.size} px")
    for batch in (1, 8):
        x = torch.randn(batch, 1, args.size, args.size)
        with torch.inference_mode():
            rate = best_rate(lambda: model(x), batch)  # noqa: B023
        print(f"  network alone, batch {batch}: {rate:6.1f} frames/s")
        lightness = torch.rand(batch, 1, 360, 640) * 100
        rate = best_rate(lambda: colorizer.ab(lightness), batch)  # noqa: B023
        print(f"  colorizer (640x360 L -> ab, {colorizer.decode.method}), batch {batch}: {rate:6.1f} frames/s")


if __name__ == "__main__":
    main()
