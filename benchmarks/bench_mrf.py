"""The Potts-model MRF: speed against its NumPy reference and the network, quality, and flicker.

    python benchmarks/bench_mrf.py [--frames-per-clip 60] [--skip-quality]

1. Speed: the numba mean-field against the NumPy reference (tests/mrf_reference.py) at 64x64
   and 256x256 with K = 23 and 25, and with 313-bin joint distributions marginalised first; the
   MRF's cost per frame (both channels, 64x64, 8 sweeps) as a share of the network's (256 px).
2. Quality: PSNR, AuC and colourfulness of mean / annealed / mode / mrf on the photos of
   ../shared/data/val and the colour clips of ../shared/data/video (turned grey first).
3. Flicker on those clips: the temporal ab error TAE and PSNR, frame by frame against temporal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mrf_reference import mean_field_reference  # noqa: E402
from vidcolor import metrics  # noqa: E402
from vidcolor.bins import marginalize  # noqa: E402
from vidcolor.color import lab_to_rgb, rgb_to_lab  # noqa: E402
from vidcolor.colorizer import Colorizer, DecodeSettings, upsample_ab  # noqa: E402
from vidcolor.evaluation import colorize_and_score, load_rgb, mean_scores  # noqa: E402
from vidcolor.models import load_model  # noqa: E402
from vidcolor.mrf import MRFSettings, PottsRefiner, link_weights, refine_channel, unary_term  # noqa: E402
from vidcolor.train.data import find_images  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
DECODINGS = ("mean", "annealed", "mode", "mrf")


def best_of(function, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def speed() -> dict:
    rng = np.random.default_rng(0)
    settings = MRFSettings()
    rows = {}
    for side in (64, 256):
        for k in (23, 25):
            probs = rng.random((side, side, k)) ** 4
            probs /= probs.sum(-1, keepdims=True)
            lightness = rng.random((side, side)) * 0.1
            bias = unary_term(probs, settings).astype(np.float64)
            right, down = (w.astype(np.float64) for w in link_weights(lightness, settings.sigma))
            from vidcolor.mrf import _mean_field

            _mean_field(bias, right, down, 8, 10.0, 3.0, 2)
            fast = best_of(lambda: _mean_field(bias, right, down, 8, 10.0, 3.0, 2), 5)  # noqa: B023
            slow = best_of(lambda: mean_field_reference(bias, right, down, 8, 10.0, 3.0, 2), 1)  # noqa: B023
            rows[f"{side}x{side} K={k}"] = {"numba_ms": fast * 1e3, "numpy_ms": slow * 1e3, "speedup": slow / fast}
        joint = torch.softmax(torch.randn(1, 313, side, side) * 3, dim=1)
        bins = torch.tensor(
            [[a, b] for a in range(-90, 101, 10) for b in range(-110, 101, 10)][:313], dtype=torch.float32
        )
        lightness = rng.random((side, side)) * 0.1

        def joint_mrf():
            probs_a, probs_b = marginalize(joint, bins)  # noqa: B023
            for probs in (probs_a, probs_b):
                refine_channel(probs[0].permute(1, 2, 0).numpy(), lightness, settings)  # noqa: B023

        rows[f"{side}x{side} K=313 marginalised (both channels)"] = {"numba_ms": best_of(joint_mrf, 3) * 1e3}
    return rows


def network_share(colorizer: Colorizer) -> dict:
    """Per-frame cost of the network (batch 8) and of the MRF on its output, on a real photo."""
    photo = load_rgb(ROOT / "examples" / "astronaut_bw.jpg")[None]
    lightness = torch.nn.functional.interpolate(rgb_to_lab(photo)[:, :1], size=(256, 256), mode="area")
    batch = lightness.expand(8, -1, -1, -1).contiguous()
    colorizer.logits(batch)
    network = best_of(lambda: colorizer.logits(batch), 3) / 8
    logits = colorizer.logits(lightness)
    small = torch.nn.functional.interpolate(lightness, size=logits.shape[-2:], mode="area")[0, 0].numpy() / 100
    probs_a, probs_b = marginalize(torch.softmax(logits, 1), colorizer.model.bins)
    pa, pb = probs_a[0].permute(1, 2, 0).numpy(), probs_b[0].permute(1, 2, 0).numpy()
    refiner = PottsRefiner(temporal=False)
    refiner.refine(pa, pb, small)
    cost = best_of(lambda: refiner.refine(pa, pb, small), 10)
    return {"network_ms_per_frame": network * 1e3, "mrf_ms_per_frame": cost * 1e3, "share": cost / network}


def photo_quality(model) -> dict:
    paths = find_images([SHARED / "val"])
    out = {}
    for method in DECODINGS:
        colorizer = Colorizer(model, "cpu", 256, DecodeSettings(method))
        scores, grey = [], []
        for path in paths:
            ours, baseline = colorize_and_score(colorizer, load_rgb(path))
            scores.append(ours)
            grey.append(baseline)
        out[method] = mean_scores(scores)
    out["grey"] = mean_scores(grey)
    return out


def clip_frames(path: Path, limit: int) -> torch.Tensor:
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1).float() / 255)
            if len(frames) == limit:
                break
    return torch.stack(frames)


def clip_quality(model, limit: int) -> dict:
    """Per decoding (and temporal on/off): mean PSNR, AuC, colourfulness and TAE over the clips."""
    variants = [(m, False) for m in DECODINGS] + [("mrf", True), ("mean", True)]
    results: dict[str, dict[str, list]] = {f"{m}{' +temporal' if t else ''}": {} for m, t in variants}
    for clip in sorted(SHARED.glob("video/*.mp4")):
        if "bw" in clip.name:
            continue
        rgb = clip_frames(clip, limit)
        lab = torch.cat([rgb_to_lab(chunk) for chunk in rgb.split(16)])
        lightness, true_ab = lab[:, :1], lab[:, 1:]
        colorizers = {
            f"{m}{' +temporal' if t else ''}": Colorizer(model, "cpu", 256, DecodeSettings(m, temporal=t))
            for m, t in variants
        }
        logits = torch.cat([colorizers["mean"].logits(chunk) for chunk in lightness.split(8)])
        for name, colorizer in colorizers.items():
            colorizer.reset_sequence()
            ab = torch.cat(
                [colorizer.decode_output(lo, li) for lo, li in zip(logits.split(8), lightness.split(8), strict=True)]
            )
            ab = upsample_ab(ab, tuple(lightness.shape[-2:]))
            predicted = lab_to_rgb(torch.cat((lightness, ab), 1))
            psnr = np.mean(
                [
                    metrics.psnr(
                        p.permute(1, 2, 0).numpy().astype(np.float64), t.permute(1, 2, 0).numpy().astype(np.float64)
                    )
                    for p, t in zip(predicted, rgb, strict=True)
                ]
            )
            auc = np.mean(
                [
                    metrics.ab_auc(a.permute(1, 2, 0).numpy(), t.permute(1, 2, 0).numpy())
                    for a, t in zip(ab[::5], true_ab[::5], strict=True)
                ]
            )
            colour = np.mean([metrics.colourfulness(p.permute(1, 2, 0).numpy()) for p in predicted[::5]])
            tae = metrics.temporal_ab_error(ab.permute(0, 2, 3, 1).numpy(), true_ab.permute(0, 2, 3, 1).numpy())
            row = results[name]
            for key, value in (("psnr", psnr), ("auc", auc), ("colourfulness", colour), ("tae", tae)):
                row.setdefault(key, []).append(float(value))
            row.setdefault("clips", []).append(clip.name)
    return {
        name: {k: (float(np.mean(v)) if k != "clips" else v) for k, v in row.items()} for name, row in results.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames-per-clip", type=int, default=60)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_model()
    figures: dict = {"speed": speed()}
    print("speed (best of several runs, 8 sweeps):")
    for name, row in figures["speed"].items():
        extra = f"  numpy {row['numpy_ms']:8.1f} ms  speedup {row['speedup']:5.1f}x" if "numpy_ms" in row else ""
        print(f"  {name:<44} numba {row['numba_ms']:7.2f} ms{extra}")
    share = network_share(Colorizer(model, "cpu", 256, DecodeSettings("mean")))
    figures["share"] = share
    print(
        f"per frame (examples/astronaut_bw.jpg, 256 px): network {share['network_ms_per_frame']:.1f} ms, "
        f"MRF (a and b, 64x64) "
        f"{share['mrf_ms_per_frame']:.1f} ms = {100 * share['share']:.1f} % of the network (target < 20 %)"
    )
    if not args.skip_quality and SHARED.exists():
        figures["photos"] = photo_quality(model)
        print(f"photos ({SHARED / 'val'}):")
        for name, row in figures["photos"].items():
            print(
                f"  {name:<10} PSNR {row['psnr']:6.2f}  AuC {row['auc']:.4f}  colourfulness {row['colourfulness']:5.1f}"
            )
        figures["clips"] = clip_quality(model, args.frames_per_clip)
        print(f"colour clips turned grey (first {args.frames_per_clip} frames of each):")
        for name, row in figures["clips"].items():
            print(
                f"  {name:<16} PSNR {row['psnr']:6.2f}  AuC {row['auc']:.4f}  colourfulness "
                f"{row['colourfulness']:5.1f}  TAE {row['tae']:6.3f}"
            )
        base, linked = figures["clips"]["mrf"], figures["clips"]["mrf +temporal"]
        print(
            f"temporal term: TAE {base['tae']:.3f} -> {linked['tae']:.3f} "
            f"({100 * (1 - linked['tae'] / base['tae']):.1f} % lower; target >= 30 %), "
            f"PSNR {base['psnr']:.2f} -> {linked['psnr']:.2f} dB (target: drop <= 0.3 dB)"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
