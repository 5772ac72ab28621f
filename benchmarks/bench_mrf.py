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
import numba
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mrf_reference import mean_field_reference  # noqa: E402
from vidcolor.bins import channel_marginals  # noqa: E402
from vidcolor.color import rgb_to_lab  # noqa: E402
from vidcolor.colorizer import Colorizer  # noqa: E402
from vidcolor.decoding import Decoder, DecodeSettings  # noqa: E402
from vidcolor.evaluation import colorize_variants, evaluate_paths, load_rgb, mean_scores, score_frames  # noqa: E402
from vidcolor.inputs import find_images  # noqa: E402
from vidcolor.models import load_model  # noqa: E402
from vidcolor.mrf import MRFSettings, link_weights, mean_field, refine, unary_term  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
DECODINGS = ("mean", "annealed", "mode", "mrf")


def best_of(function, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def random_bias(rng: np.random.Generator, channels: int, k: int, side: int) -> np.ndarray:
    """``(C, K, side, side)`` unary terms of random, mostly peaked distributions."""
    probs = rng.random((channels, k, side, side)) ** 4
    return unary_term(probs / probs.sum(axis=1, keepdims=True), MRFSettings())


def speed() -> dict:
    """numba against the NumPy reference: one channel (numba on 1 thread and on all), and a
    frame's two channels (numba runs them in one call; the reference one after the other)."""
    rng = np.random.default_rng(0)
    settings = MRFSettings()
    threads = numba.get_num_threads()
    rows = {}
    for side in (64, 256):
        repeats = 20 if side == 64 else 5
        lightness = rng.random((side, side)) * 0.1
        right, down = link_weights(lightness, settings.sigma)
        for k in (23, 25):
            bias = random_bias(rng, 2, k, side)

            def run(channels):
                return mean_field(channels, right, down, 8, 10.0, 3.0, 2)  # noqa: B023

            run(bias)
            run(bias[:1])
            channel = best_of(lambda: run(bias[:1]), repeats)  # noqa: B023
            frame = best_of(lambda: run(bias), repeats)  # noqa: B023
            numba.set_num_threads(1)
            try:
                channel_1thread = best_of(lambda: run(bias[:1]), repeats)  # noqa: B023
            finally:
                numba.set_num_threads(threads)
            reference = [
                best_of(
                    lambda c=c: mean_field_reference(np.moveaxis(bias[c], 0, -1), right, down, 8, 10.0, 3.0, 2),  # noqa: B023
                    3 if side == 64 else 1,
                )
                for c in range(2)
            ]
            rows[f"{side}x{side} K={k}"] = {
                "numba_channel_ms": channel * 1e3,
                "numba_channel_1thread_ms": channel_1thread * 1e3,
                "numpy_channel_ms": reference[0] * 1e3,
                "speedup_channel": reference[0] / channel,
                "speedup_channel_1thread": reference[0] / channel_1thread,
                "numba_frame_ms": frame * 1e3,
                "numpy_frame_ms": sum(reference) * 1e3,
                "speedup_frame": sum(reference) / frame,
            }
        joint = torch.randn(1, 313, side, side) * 3  # logits
        bins = torch.tensor(
            [[a, b] for a in range(-90, 101, 10) for b in range(-110, 101, 10)][:313], dtype=torch.float32
        )

        def joint_mrf():
            probs = channel_marginals(joint, bins)[0].numpy()  # noqa: B023
            refine(probs, lightness, settings)  # noqa: B023

        joint_mrf()
        rows[f"{side}x{side} K=313 marginalised"] = {"numba_frame_ms": best_of(joint_mrf, repeats) * 1e3}
    return rows


def network_share(colorizer: Colorizer) -> dict:
    """Per-frame cost of the network (batch 8, 256 px) and of the MRF decoding of its output
    (softmax, marginalisation onto a and b, both channels' mean-field, mode), on a real photo."""
    photo = load_rgb(ROOT / "examples" / "astronaut_bw.jpg")[None]
    lightness = torch.nn.functional.interpolate(rgb_to_lab(photo)[:, :1], size=(256, 256), mode="area")
    batch = lightness.expand(8, -1, -1, -1).contiguous()
    colorizer.logits(batch)
    network = best_of(lambda: colorizer.logits(batch), 3) / 8
    logits = colorizer.logits(lightness)
    decoder = Decoder(DecodeSettings("mrf", temporal=False), colorizer.model.bins, "classification", colorizer.device)

    def decode_mrf():
        return decoder.decode(logits, lightness)

    decode_mrf()
    cost = best_of(decode_mrf, 20)
    return {"network_ms_per_frame": network * 1e3, "mrf_ms_per_frame": cost * 1e3, "share": cost / network}


def photo_quality(model) -> dict:
    """Mean scores of each decoding (and grey) on the photos, through vidcolor.evaluation."""
    paths = find_images([SHARED / "val"])
    out = {}
    for method in DECODINGS:
        result = evaluate_paths(
            Colorizer(model, "cpu", 256, DecodeSettings(method), runtime="torch", precision="f32"), paths
        )
        out[method], out["grey"] = result["model"], result["grey"]
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
    """Per decoding (and temporal on/off): mean scores over the clips (vidcolor.evaluation's, as
    ``vidcolor eval`` gives them: PSNR, AuC, colourfulness on every 5th frame; TAE, CDC)."""
    variants = [(m, False) for m in DECODINGS] + [("mrf", True), ("mean", True)]
    rows: dict[str, list[dict]] = {f"{m}{' +temporal' if t else ''}": [] for m, t in variants}
    clips = [c for c in sorted(SHARED.glob("video/*.mp4")) if "bw" not in c.name]
    for clip in clips:
        rgb = clip_frames(clip, limit)
        lightness = torch.cat([rgb_to_lab(chunk)[:, :1] for chunk in rgb.split(16)])
        for temporal in (False, True):
            methods = [m for m, t in variants if t == temporal]
            colorizer = Colorizer(
                model, "cpu", 256, DecodeSettings("mean", temporal=temporal), runtime="torch", precision="f32"
            )
            scores = score_frames(colorize_variants(colorizer, methods, lightness, film=True), rgb, clip=True)
            for method in methods:
                rows[f"{method}{' +temporal' if temporal else ''}"].append(scores[method])
    return {name: {**mean_scores(r), "clips": [c.name for c in clips]} for name, r in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames-per-clip", type=int, default=60)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_model()
    figures: dict = {"speed": speed()}
    print(f"speed (best of several runs, 8 sweeps, numba on {numba.get_num_threads()} threads unless said):")
    for name, row in figures["speed"].items():
        if "numpy_channel_ms" not in row:
            print(f"  {name:<28} frame (a and b): numba {row['numba_frame_ms']:7.2f} ms")
            continue
        print(
            f"  {name:<28} channel: numba {row['numba_channel_ms']:7.2f} ms (1 thread "
            f"{row['numba_channel_1thread_ms']:7.2f}), numpy {row['numpy_channel_ms']:8.1f} ms, "
            f"speed-up {row['speedup_channel']:5.1f}x (1 thread {row['speedup_channel_1thread']:5.1f}x); "
            f"frame: numba {row['numba_frame_ms']:7.2f} ms, numpy {row['numpy_frame_ms']:8.1f} ms, "
            f"speed-up {row['speedup_frame']:5.1f}x"
        )
    share = network_share(Colorizer(model, "cpu", 256, DecodeSettings("mean"), runtime="torch", precision="f32"))
    figures["share"] = share
    print(
        f"per frame (examples/astronaut_bw.jpg, 256 px): network {share['network_ms_per_frame']:.1f} ms, "
        f"MRF decoding (a and b, 64x64) "
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
