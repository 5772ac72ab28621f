"""Frames/s of the shipped network in every installed runtime, side by side, on the CPU.

    python benchmarks/bench_model.py [--threads 2] [--size 256] [--runs 3]

For each runtime (PyTorch eager, OpenVINO, ONNX Runtime: those installed) times the network
alone at batch 1 and 8 and the whole colorizer (resize, network, default decoding) on
640x360 lightness at batch 8, after a warm-up, best of five calls. The whole measurement is
repeated ``--runs`` times, the runtimes interleaved so that drift on a shared machine hits
them alike; each cell prints the median and the range over the runs, and the last column the
median speed-up over PyTorch. Targets (issue 14): the default runtime >= 3x PyTorch at batch 8.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vidcolor.colorizer import build_colorizer  # noqa: E402
from vidcolor.runtime import RUNTIMES, installed, resolve_runtime  # noqa: E402


def best_rate(function, frames: int, repeats: int = 5) -> float:
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return frames / best


def measure(colorizer, size: int) -> dict[str, float]:
    rates = {}
    for batch in (1, 8):
        x = torch.rand(batch, 1, size, size) - 0.5
        with torch.inference_mode():
            rates[f"network b{batch}"] = best_rate(lambda: colorizer.run_network(x), batch)  # noqa: B023
    lightness = torch.rand(8, 1, 360, 640) * 100
    rates["colorizer b8"] = best_rate(lambda: colorizer.ab(lightness), 8)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runtimes = [r for r in RUNTIMES if r != "auto" and installed(r)]
    default = resolve_runtime("auto", torch.device("cpu"))
    colorizers = {r: build_colorizer("default", args.size, "cpu", None, None, runtime=r) for r in runtimes}
    parameters = sum(p.numel() for p in colorizers["torch"].model.parameters())
    print(
        f"default model: {parameters / 1e6:.2f} M parameters, {torch.get_num_threads()} CPU threads, {args.size} px, "
        f"decoding {colorizers['torch'].decode.method}; default runtime: {default}; {args.runs} runs"
    )
    results: dict[str, dict[str, list[float]]] = {r: {} for r in runtimes}
    for _ in range(args.runs):
        for runtime, colorizer in colorizers.items():
            for name, rate in measure(colorizer, args.size).items():
                results[runtime].setdefault(name, []).append(rate)
    names = list(results["torch"])
    print(f"{'runtime':<12}" + "".join(f"{n + ' fps (range)':>28}" for n in names) + f"{'x torch (b8)':>14}")
    for runtime in runtimes:
        cells = [
            f"{statistics.median(v):8.1f} ({min(v):.1f}-{max(v):.1f})" for v in (results[runtime][n] for n in names)
        ]
        ratio = statistics.median(
            [a / b for a, b in zip(results[runtime]["network b8"], results["torch"]["network b8"], strict=True)]
        )
        print(
            f"{runtime + ('*' if runtime == default else ''):<12}"
            + "".join(f"{c:>28}" for c in cells)
            + f"{ratio:>13.2f}x"
        )
    print("* the runtime `--runtime auto` picks here")


if __name__ == "__main__":
    main()
