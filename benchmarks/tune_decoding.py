"""Choose a model's default decoding by measurement: mean, and the annealed mean over temperatures.

    python benchmarks/tune_decoding.py MODEL.safetensors [--photos DIR] [--clips] [--temperatures 0.3,0.38,...]
        [--mrf] [--runtime auto]

Scores every decoding on the photos (full resolution; default ../shared/data/val) and, with
``--clips``, on the colour clips of ../shared/data/video turned grey (first 60 frames, temporal
blend on), through vidcolor.evaluation (the path of ``vidcolor eval`` and the model card). Prints,
per decoding, PSNR against grey, AuC and the colourfulness ratio (targets: PSNR >= grey + 0.2 dB,
ratio 0.7-1.2 on photos; within 1.5 dB of grey and ratio <= 1.4 on clips). ``--mrf`` adds
Potts-model variants (unary weight and form, posterior read out by mode or mean, on the network's
own marginals) and the shipped MRF at each temperature (target: PSNR within 0.3 dB of the default
decoding's, lower TAE on the clips).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_mrf import clip_frames  # noqa: E402
from vidcolor.color import rgb_to_lab  # noqa: E402
from vidcolor.colorizer import Colorizer  # noqa: E402
from vidcolor.decoding import DecodeSettings  # noqa: E402
from vidcolor.evaluation import colorize_variants, load_rgb, mean_scores, score_frames  # noqa: E402
from vidcolor.inputs import find_images  # noqa: E402
from vidcolor.models import load_model  # noqa: E402
from vidcolor.mrf import MRFSettings  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


# Potts-model variants: the shipped constants, and unary forms, strengths and read-outs around them.
def _log_mrf(weight: float = 1.0, same: float = 1.0, temporal: float = MRFSettings.temporal_weight) -> dict:
    """A log-unary Potts model read out by its mean (``near`` kept at 0.3 of ``same``)."""
    return {
        "unary": "log",
        "unary_weight": weight,
        "same": same,
        "near": 0.3 * same,
        "temporal_weight": temporal,
        "readout": "mean",
    }


MRF_VARIANTS = {
    "mrf shipped": {},
    "mrf prob mean": {"readout": "mean"},
    "mrf log c=1 s=0.5 mean": _log_mrf(same=0.5),
    "mrf log c=1 s=1 mean": _log_mrf(),
    "mrf log c=1 s=2 mean": _log_mrf(same=2.0),
    "mrf log c=1.43 s=1 mean": _log_mrf(weight=1.43),
    **{f"mrf log c=1 s=1 t={t:g} mean": _log_mrf(temporal=t) for t in (0.3, 0.5, 0.6, 1.0)},
}


def decodings(temperatures: list[float], mrf: bool) -> dict[str, DecodeSettings]:
    out = {"mean": DecodeSettings("mean")}
    out.update({f"annealed T={t:g}": DecodeSettings("annealed", temperature=t) for t in temperatures})
    if mrf:  # the variants on the network's own marginals (T = 1), the shipped one at each temperature
        for name, changes in MRF_VARIANTS.items():
            out[name] = DecodeSettings("mrf", temperature=1.0, mrf=MRFSettings(**changes))
        out.update({f"mrf T={t:g}": DecodeSettings("mrf", temperature=t) for t in temperatures})
    return out


def temporal_variants(temperature: float, blends: list[float], mrf_weights: list[float]) -> dict[str, DecodeSettings]:
    """The flow-linked temporal link of the annealed mean and of the MRF (both at ``temperature``)
    at several weights, each beside the same decoding frame by frame (``no-temporal``)."""
    annealed = DecodeSettings("annealed", temperature=temperature)
    out = {f"annealed T={temperature:g} no-temporal": replace(annealed, temporal=False)}
    out.update({f"annealed T={temperature:g} blend={b:g}": replace(annealed, blend=b) for b in blends})
    mrf = DecodeSettings("mrf", temperature=temperature)
    out[f"mrf T={temperature:g} no-temporal"] = replace(mrf, temporal=False)
    for weight in mrf_weights:
        out[f"mrf T={temperature:g} t={weight:g}"] = replace(mrf, mrf=MRFSettings(temporal_weight=weight))
    return out


def score(model, settings: dict[str, DecodeSettings], items: list[tuple[torch.Tensor, bool]], runtime: str) -> dict:
    """Mean scores per decoding (and grey) over ``(T, 3, H, W)`` frames, each a clip or a photo."""
    rows: dict[str, list[dict]] = {name: [] for name in ["grey", *settings]}
    colorizer = Colorizer(model, "cpu", 256, runtime=runtime, precision="auto")
    for frames, clip in items:
        lightness = torch.cat([rgb_to_lab(c.double()).float()[:, :1] for c in frames.split(16)])
        scores = score_frames(colorize_variants(colorizer, settings, lightness, film=clip), frames, clip)
        for name, row in scores.items():
            rows[name].append(row)
    table = {name: mean_scores(r) for name, r in rows.items()}
    for name, r in rows.items():
        if r and "cdc_ratio" in r[0]:
            table[name]["worst_cdc_ratio"] = max(row["cdc_ratio"] for row in r)
            table[name]["per_clip_psnr_vs_grey"] = [
                round(row["psnr"] - grey["psnr"], 2) for row, grey in zip(r, rows["grey"], strict=True)
            ]
            table[name]["per_clip_cdc_ratio"] = [round(row["cdc_ratio"], 2) for row in r]
    return table


def show(title: str, table: dict) -> None:
    grey = table["grey"]["psnr"]
    print(title)
    for name, row in table.items():
        print(
            f"  {name:<24} PSNR {row['psnr']:6.2f} ({row['psnr'] - grey:+.2f} vs grey)  AuC {row['auc']:.4f}  "
            f"colourfulness {row['colourfulness']:5.1f} (ratio {row['colourfulness_ratio']:.2f})"
            + (
                f"  TAE {row['tae']:.3f}  CDC x{row['cdc_ratio']:.2f} (worst clip x{row['worst_cdc_ratio']:.2f})\n"
                f"      per clip: PSNR vs grey {row['per_clip_psnr_vs_grey']}, CDC x {row['per_clip_cdc_ratio']}"
                if "tae" in row
                else ""
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--photos", type=Path, default=SHARED / "val")
    parser.add_argument("--clips", action="store_true")
    parser.add_argument("--temperatures", default="0.3,0.38,0.5,0.7")
    parser.add_argument("--mrf", action="store_true", help="also score Potts-model variants")
    parser.add_argument("--skip-photos", action="store_true", help="score the clips only")
    parser.add_argument(
        "--temporal",
        action="store_true",
        help="score the flow-linked temporal link instead (annealed at the first --temperatures, blend weights "
        "--blends; MRF temporal weights --mrf-weights), each beside the same decoding frame by frame",
    )
    parser.add_argument("--blends", default="0.5,0.7,0.85")
    parser.add_argument("--mrf-weights", default="0.5,0.7,0.85")
    parser.add_argument("--frames", type=int, default=60, help="frames of each clip scored")
    parser.add_argument("--only", help="comma-separated decodings to score (names as printed)")
    parser.add_argument("--runtime", default="auto", help="where the network runs (the scores do not depend on it)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model)
    temperatures = [float(t) for t in args.temperatures.split(",")]
    if args.temporal:
        blends, weights = ([float(v) for v in a.split(",")] for a in (args.blends, args.mrf_weights))
        settings = temporal_variants(temperatures[0], blends, weights)
    else:
        settings = decodings(temperatures, args.mrf)
    if args.only:
        settings = {name: settings[name] for name in args.only.split(",")}
    figures = {}
    if not args.skip_photos:
        photos = [(load_rgb(p)[None], False) for p in find_images([args.photos])]
        figures["photos"] = score(model, settings, photos, args.runtime)
        show(f"photos ({args.photos}, {len(photos)}):", figures["photos"])
    if args.clips:
        clips = [c for c in sorted(SHARED.glob("video/*.mp4")) if "bw" not in c.name]
        figures["clips"] = score(model, settings, [(clip_frames(c, args.frames), True) for c in clips], args.runtime)
        show(f"colour clips ({len(clips)}, first {args.frames} frames):", figures["clips"])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
