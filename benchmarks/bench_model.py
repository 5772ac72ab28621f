"""Frames/s of the shipped network (or ``--models``) in every installed runtime, side by side, on the CPU.

    python benchmarks/bench_model.py [--threads 2] [--size 256] [--runs 3] [--models default,other.safetensors]
        [--runtimes torch,openvino,openvino:bf16]

For each runtime (PyTorch eager, OpenVINO, ONNX Runtime: those installed, in f32; OpenVINO also
in mixed precision and in bf16 on a CPU that computes bf16 natively) times the network
alone at batch 1 and 8 and the whole colorizer (resize, network, default decoding) on
640x360 lightness at batch 8, after a warm-up, best of five calls. The whole measurement is
repeated ``--runs`` times, the runtimes interleaved so that drift on a shared machine hits
them alike; each cell prints the median and the range over the runs, and the last column the
speed-up over the same model in PyTorch (f32) at batch 8, taken within each run: median and
range. ``--models`` measures several models (each in every runtime) in the same interleaved
runs. A star marks what ``--runtime auto --precision auto`` picks. Targets (issue 14): the
default runtime >= 3x PyTorch at batch 8.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vidcolor.colorizer import ColorizerSpec  # noqa: E402
from vidcolor.runtime import RUNTIMES, cpu_has_bf16, installed  # noqa: E402


def runtime_variants(names: str | None = None) -> list[tuple[str, str]]:
    """``(runtime, precision)`` pairs to measure: ``names`` as ``runtime[:precision]``, comma-separated,
    or every installed runtime in f32 and, on a CPU with native bf16, OpenVINO in mixed precision
    and in bf16 too."""
    if names:
        return [(n.split(":")[0], n.split(":")[1] if ":" in n else "f32") for n in names.split(",")]
    variants = [(r, "f32") for r in RUNTIMES if r != "auto" and installed(r)]
    return variants + ([("openvino", "mixed"), ("openvino", "bf16")] if cpu_has_bf16() else [])


def variant_name(runtime: str, precision: str) -> str:
    """``openvino`` for f32, ``openvino:bf16`` (or ``:mixed``) for another precision."""
    return runtime if precision == "f32" else f"{runtime}:{precision}"


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
    parser.add_argument("--models", default="default", help="comma-separated models (default: the shipped one)")
    parser.add_argument(
        "--runtimes", help="comma-separated runtime[:precision] (default: every one installed, and openvino:bf16)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = runtime_variants(args.runtimes)
    if ("torch", "f32") not in variants:
        variants.insert(0, ("torch", "f32"))  # the reference of the speed-ups
    models = args.models.split(",")
    colorizers = {
        (m, variant_name(r, p)): ColorizerSpec(m, args.size, "cpu", None, None, runtime=r, precision=p).build()
        for m in models
        for r, p in variants
    }
    defaults = {}  # per model: what --runtime auto --precision auto picks
    for model in models:
        chosen = ColorizerSpec(model, args.size, "cpu", None, None, runtime="auto", precision="auto").build()
        defaults[model] = variant_name(chosen.runtime, chosen.precision)
    print(f"{torch.get_num_threads()} CPU threads, {args.size} px; {args.runs} runs")
    for model in models:
        colorizer = colorizers[model, "torch"]
        parameters = sum(p.numel() for p in colorizer.model.parameters())
        print(
            f"model {model}: {parameters / 1e6:.2f} M parameters, decoding {colorizer.decode.method}; "
            f"by default: {defaults[model]}"
        )
    results: dict[tuple[str, str], dict[str, list[float]]] = {key: {} for key in colorizers}
    for _ in range(args.runs):
        for key, colorizer in colorizers.items():
            for name, rate in measure(colorizer, args.size).items():
                results[key].setdefault(name, []).append(rate)
    names = list(results[models[0], "torch"])
    label = max(len(f"{m} {r}*") for m, r in colorizers) + 2
    header = "".join(f"{n + ' fps (range)':>28}" for n in names)
    print(f"{'model, runtime':<{label}}{header}{'x torch, b8 (range)':>24}")
    for (model, runtime), rates in results.items():
        cells = [f"{statistics.median(v):8.1f} ({min(v):.1f}-{max(v):.1f})" for v in (rates[n] for n in names)]
        eager = results[model, "torch"]["network b8"]
        ratios = [a / b for a, b in zip(rates["network b8"], eager, strict=True)]  # within each run
        ratio = f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        name = f"{model} {runtime}{'*' if runtime == defaults[model] else ''}"
        print(f"{name:<{label}}" + "".join(f"{c:>28}" for c in cells) + f"{ratio:>24}")
    print("* what `--runtime auto --precision auto` (the default) picks here")


if __name__ == "__main__":
    main()
