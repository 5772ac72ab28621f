"""Training images/s on this machine for thread settings, crop sides and memory layouts.

    python benchmarks/bench_train.py [--sizes 128,160,192] [--threads 1,2] [--batch-size 16] [--steps 6]
                                     [--runs 2] [--precisions f32,bf16] [--side-by-side]

Times ``vidcolor.train.step.training_step`` (crops, Lab, forward, rebalanced loss, backward,
AdamW, weight average: what ``vidcolor train`` runs each step) on the lite0-unet with its
pretrained-encoder layers frozen as in training, on random images held in memory. Each cell is
the median (range) over ``--runs`` repeats of ``--steps`` timed steps after two untimed ones.
``--side-by-side`` also runs two one-thread trainings at once, one per core, and reports their
summed images/s (the throughput of two runs, e.g. two settings compared side by side).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vidcolor.bins import gamut_bins  # noqa: E402
from vidcolor.models import build_model  # noqa: E402
from vidcolor.train.config import TrainConfig  # noqa: E402
from vidcolor.train.loop import build_optimizer, weight_average  # noqa: E402
from vidcolor.train.step import StepParts, training_step  # noqa: E402


def images_per_second(size: int, batch: int, steps: int, channels_last: bool, precision: str = "f32") -> float:
    """Training images/s at crop ``size`` with the current torch thread count."""
    bins = gamut_bins()
    model = build_model("lite0-unet", {"num_bins": len(bins)}, bins)
    for parameter in model.frozen_parameters():
        parameter.requires_grad_(False)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    config = TrainConfig(data=[], size=size)
    parts = StepParts(
        model,
        build_optimizer(model, config),
        weight_average(model, config.ema),
        bins,
        torch.ones(len(bins)),
        channels_last=channels_last,
        precision=precision,
    )
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, config.cache_size, config.cache_size), dtype=torch.uint8)
    model.train()

    def step() -> None:
        index = torch.randint(0, len(images), (batch,), generator=generator)
        training_step(parts, images[index], size, 1e-4, generator)

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def side_by_side(args: argparse.Namespace, size: int) -> float:
    """Summed images/s of two one-thread processes, one pinned to each of the first two cores."""
    command = [sys.executable, __file__, "--child", "--sizes", str(size), "--batch-size", str(args.batch_size)]
    command += ["--steps", str(args.steps)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    children = [
        subprocess.Popen(["taskset", "-c", str(core), *command], env=env, stdout=subprocess.PIPE, text=True)
        for core in (0, 1)
    ]
    return sum(json.loads(child.communicate()[0])["rate"] for child in children)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="128,160,192")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--precisions", default="f32,bf16", help="f32 and/or bf16 (CPU autocast in the forward pass)")
    parser.add_argument("--side-by-side", action="store_true")
    parser.add_argument("--contiguous", action="store_true", help="also time the NCHW layout (2 threads)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child:
        torch.set_num_threads(1)
        print(json.dumps({"rate": images_per_second(sizes[0], args.batch_size, args.steps, True)}))
        return
    settings = [
        (f"{t} thread{'s' if t > 1 else ''}{', bf16' if p == 'bf16' else ''}", t, True, p)
        for p in args.precisions.split(",")
        for t in map(int, args.threads.split(","))
    ]
    if args.contiguous:
        settings.append(("2 threads, NCHW", 2, False, "f32"))
    rows: dict[str, dict[int, list[float]]] = {}
    for _ in range(args.runs):
        for size in sizes:
            for name, threads, channels_last, precision in settings:
                torch.set_num_threads(threads)
                rate = images_per_second(size, args.batch_size, args.steps, channels_last, precision)
                rows.setdefault(name, {}).setdefault(size, []).append(rate)
            if args.side_by_side:
                rows.setdefault("2 runs x 1 thread (sum)", {}).setdefault(size, []).append(side_by_side(args, size))
    print(
        f"lite0-unet training step, batch {args.batch_size}, {args.steps} steps timed, {args.runs} runs; "
        f"images/s, median (range)"
    )
    print(f"{'setting':<26}" + "".join(f"{str(s) + ' px':>22}" for s in sizes))
    for name, by_size in rows.items():
        cells = [f"{statistics.median(v):8.1f} ({min(v):.1f}-{max(v):.1f})" for v in by_size.values()]
        print(f"{name:<26}" + "".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
