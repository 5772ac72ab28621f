"""Score models on the selection rule's validation set V (docs/MODEL_SELECTION.md) as training validates.

    python scripts/selection_figures.py MODEL.safetensors [MODEL ...] [--hold-out 0.1] [--json OUT.json]

V is ``../shared/data/val`` plus the held-out files (file-name hash, ``--hold-out``) of every folder
of ``../shared/data/train``, each image cached as training's validation holds it (256 px squares).
Each model is scored at its card's default decoding (or ``--decode``) with the grey copy beside it: PSNR, SSIM, AuC,
colourfulness and its ratio, and the perceptual figures (Frechet distance of EfficientNet-Lite0
features to the truth's, classifier agreement); the held-out faces (``train/utkface``) are also
reported apart, for the rule's face bound, and with ``--general`` the general photos alone (val and
the held-out files that are neither faces nor outdoor scenes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vidcolor.colorizer import ColorizerSpec  # noqa: E402
from vidcolor.evaluation import evaluate_photos  # noqa: E402
from vidcolor.inputs import find_images, is_held_out  # noqa: E402
from vidcolor.perceptual import SetJudgement, load_judge  # noqa: E402
from vidcolor.train.data import load_image_set  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
SIDE = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--hold-out", type=float, default=0.1)
    parser.add_argument("--decode", help="a decoding for every model instead of each card's own (e.g. annealed)")
    parser.add_argument("--temperature", type=float, help="of --decode annealed")
    parser.add_argument(
        "--general",
        action="store_true",
        help="also the general photos alone (val, held-out non-faces, non-scenes)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    held = [p for p in find_images([SHARED / "train"]) if is_held_out(p, args.hold_out)]
    faces = [p for p in held if "utkface" in p.parts]
    general = [p for p in held if not {"utkface", "intel-scenes"} & set(p.parts)]
    sets = {"V": find_images([SHARED / "val"]) + held, "faces": faces}
    if args.general:
        sets["general"] = find_images([SHARED / "val"]) + general
    images = {name: load_image_set(paths, SIDE, 2).images for name, paths in sets.items()}
    judge = load_judge()
    judgements = {name: SetJudgement(judge) for name in sets if name != "faces"}  # one per set: keys are indices
    figures: dict[str, dict] = {}
    for model in args.models:
        colorizer = ColorizerSpec(model, SIDE, "cpu", args.decode, args.temperature).build()
        figures[model] = {}
        for name, stack in images.items():
            started = time.perf_counter()
            photos = (image.float() / 255.0 for image in stack)
            result = evaluate_photos(colorizer, photos, judgement=judgements.get(name))
            result["seconds"] = round(time.perf_counter() - started, 1)
            figures[model][name] = result
            model_row, grey = result["model"], result["grey"]
            line = (
                f"{model} {name} ({result['images']} images, {result['seconds']} s): PSNR {model_row['psnr']:.2f} "
                f"(grey {grey['psnr']:.2f}) colourfulness ratio {model_row['colourfulness_ratio']:.3f}"
            )
            if "frechet" in model_row:
                line += (
                    f" Frechet {model_row['frechet']:.2f} (grey {grey['frechet']:.2f}, "
                    f"x{model_row['frechet'] / grey['frechet']:.3f})"
                    f" agreement {model_row['agreement']:.3f} (grey {grey['agreement']:.3f})"
                )
            print(line, flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
