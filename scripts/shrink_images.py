"""Copy folders of images, each resized (short side SIZE) and centre-cropped to SIZE x SIZE.

This is the transform ``vidcolor train`` applies when it loads images, done ahead of time so
that a training set fits the 64 MiB upload limit of the remote GPU machine. Usage:

    python scripts/shrink_images.py SIZE OUT_DIR IN_DIR [IN_DIR ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from vidcolor.inputs import find_images
from vidcolor.train.data import load_square


def main(size: int, out_dir: Path, folders: list[Path]) -> None:
    written = 0
    for folder in folders:
        for path in find_images([folder]):
            square = load_square(path, size)
            if square is None:
                continue
            target = out_dir / folder.name / path.relative_to(folder).with_suffix(".jpg")
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(square).save(target, quality=85)
            written += 1
    print(f"{written} images written to {out_dir}")


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
