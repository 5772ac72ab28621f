"""Hints measured: each photo of ``../shared/data/val`` (turned grey) colorized automatically and
with 20 hint points (3 x 3 px, colours from the truth, at random places, seeded per photo).

    python benchmarks/bench_hints.py [--points 20] [--decode annealed] [--limit N]

Prints the mean PSNR (dB) of both against the truth, and how far the hinted pixels' colours are
from their hints (CIE76 Delta E in Lab units: mean and worst over all hinted pixels).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vidcolor.color import rgb_to_lab  # noqa: E402
from vidcolor.colorizer import ColorizerSpec  # noqa: E402
from vidcolor.evaluation import load_rgb, quantise  # noqa: E402
from vidcolor.film.frames import rgb_rows  # noqa: E402
from vidcolor.hints import POINT_SIDE, clamp_rows, read_hints  # noqa: E402
from vidcolor.inputs import find_images  # noqa: E402

VAL = ROOT.parent / "shared" / "data" / "val"


def colour(colorizer, lightness: torch.Tensor, hints) -> torch.Tensor:
    """``(3, H, W)`` RGB in [0, 1] of ``(1, 1, H, W)`` L, as the photo path makes it."""
    low = colorizer.ab_lowres(lightness, hints=hints).cpu().float()
    clamp = (lambda ab, rows: clamp_rows(ab, hints, rows)) if hints is not None else None
    return torch.cat([rgb for _, rgb in rgb_rows(lightness, low, 64, clamp)], dim=2)[0]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean().clamp_min(1e-12)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--decode", default=None)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    colorizer = ColorizerSpec(device="cpu", decode_method=args.decode, runtime="torch", precision="f32").build()
    automatic, hinted, errors = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for path in find_images([VAL])[: args.limit]:
            truth = load_rgb(path).double()
            lab = rgb_to_lab(truth[None])[0]
            height, width = truth.shape[-2:]
            generator = np.random.default_rng(zlib.crc32(path.name.encode()))
            margin = POINT_SIDE // 2
            ys = generator.integers(margin, height - margin, args.points)
            xs = generator.integers(margin, width - margin, args.points)
            points = [
                {"x": int(x), "y": int(y), "colour": [round(float(v) * 255) for v in truth[:, y, x]]}
                for x, y in zip(xs, ys, strict=True)
            ]
            hints_file = Path(tmp) / f"{path.stem}.json"
            hints_file.write_text(json.dumps(points))
            hints = read_hints(hints_file, (height, width))
            lightness = lab[None, :1].float()
            plain = quantise(colour(colorizer, lightness, None))
            guided = quantise(colour(colorizer, lightness, hints))
            automatic.append(psnr(plain, truth.float()))
            hinted.append(psnr(guided, truth.float()))
            out_lab = rgb_to_lab(guided[None].double())[0]
            wanted = rgb_to_lab(torch.from_numpy(np.array([p["colour"] for p in points]) / 255).T[None, :, :, None])
            for (x, y), hint in zip(zip(xs, ys, strict=True), wanted[0, :, :, 0].T, strict=True):
                got = out_lab[:, y, x]
                errors.append(float(torch.linalg.vector_norm(got[1:] - hint[1:])))  # ab: L is the photo's
            print(f"{path.parent.name}/{path.name}: automatic {automatic[-1]:.2f}, hinted {hinted[-1]:.2f}", flush=True)
    gain = np.mean(hinted) - np.mean(automatic)
    print(
        f"{len(automatic)} photos: automatic {np.mean(automatic):.2f} dB, with {args.points} hints "
        f"{np.mean(hinted):.2f} dB ({gain:+.2f}); hinted pixels' ab from their hints: mean {np.mean(errors):.2f}, "
        f"worst {np.max(errors):.2f} Lab units"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
