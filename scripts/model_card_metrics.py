"""Measure a model on colour photos (full resolution, its default decoding) and record it in its card.

    python scripts/model_card_metrics.py [MODEL.safetensors] [VAL_DIR]

Defaults: the shipped model and ../shared/data/val. Writes ``metrics`` into MODEL.json.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from vidcolor.colorizer import ColorizerSpec
from vidcolor.evaluation import evaluate_paths
from vidcolor.inputs import find_images
from vidcolor.models import DEFAULT_WEIGHTS


def main(model_path: Path, val_dir: Path) -> None:
    torch.set_num_threads(2)
    colorizer = ColorizerSpec(str(model_path), 256, "cpu", None, None).build()
    paths = find_images([val_dir])
    result = evaluate_paths(colorizer, paths)
    result["decoding"] = asdict(colorizer.decode)
    result["network_input"] = colorizer.size
    result["data"] = str(val_dir)
    result["command"] = f"python scripts/model_card_metrics.py {model_path} {val_dir}"
    card_path = model_path.with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    card["metrics"] = result
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(
        Path(arguments[0]) if arguments else DEFAULT_WEIGHTS,
        Path(arguments[1]) if len(arguments) > 1 else Path(__file__).resolve().parent.parent.parent / "shared/data/val",
    )
