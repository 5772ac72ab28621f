"""The README's keyframe picture, from the bundled pan (run from the project root).

    python examples/make_keyframe_figure.py

Colours the first frame of ``examples/pan_bw.mp4`` with the colours of the scikit-image photos
it pans across (standing in for a frame coloured by hand), colorizes the film with and without
it as its keyframe (``--keyframes``), and writes ``docs/keyframes.jpg``: the keyframe, then the
frame two seconds later colorized automatically, with the keyframe, and in its true colours.
Prints the PSNR of both colorizations of that frame against the true colours.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw
from skimage import data

HERE = Path(__file__).resolve().parent
FILM = HERE / "pan_bw.mp4"
FIGURE = HERE.parent / "docs" / "keyframes.jpg"
LATER = 48  # frame 48 at 24 fps: two seconds after the keyframe


def colour_frames(count: int = 72, width: int = 320, height: int = 240) -> list[np.ndarray]:
    """The pan of ``make_examples.py`` in colour: the same windows of the same photos."""
    strip = np.concatenate(
        [np.asarray(Image.fromarray(im).resize((400, 300))) for im in (data.astronaut(), data.coffee())], axis=1
    )
    frames = []
    for i in range(count):
        left = int(i * (strip.shape[1] - width * 1.25) / (count - 1))
        window = Image.fromarray(strip[20 : 20 + 300, left : left + 400])
        frames.append(np.asarray(window.resize((width, height), Image.Resampling.BILINEAR)))
    return frames


def frame_at(path: Path, index: int) -> np.ndarray:
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise SystemExit(f"{path}: no frame {index}")


def labelled(image: np.ndarray, text: str) -> Image.Image:
    panel = Image.fromarray(image)
    ImageDraw.Draw(panel).text((6, 4), text, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    return panel


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def main() -> None:
    truth = colour_frames()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        keys = folder / "keys"
        keys.mkdir()
        Image.fromarray(truth[0]).save(keys / "000000.png")
        outputs = {}
        for name, extra in (("automatic", []), ("keyframe", ["--keyframes", str(keys)])):
            outputs[name] = folder / f"{name}.mp4"
            command = [sys.executable, "-m", "vidcolor", str(FILM), "-o", str(outputs[name]), "--quiet", *extra]
            subprocess.run(command, check=True)
        automatic, guided = frame_at(outputs["automatic"], LATER), frame_at(outputs["keyframe"], LATER)
    panels = [
        labelled(truth[0], "keyframe (frame 0)"),
        labelled(automatic, "2 s later: automatic"),
        labelled(guided, "2 s later: with the keyframe"),
        labelled(truth[LATER], "2 s later: true colours"),
    ]
    sheet = Image.new("RGB", (sum(p.width for p in panels) + 6 * (len(panels) - 1), panels[0].height), "white")
    for i, panel in enumerate(panels):
        sheet.paste(panel, (i * (panel.width + 6), 0))
    FIGURE.parent.mkdir(exist_ok=True)
    sheet.save(FIGURE, quality=85)
    print(
        f"{FIGURE}: frame {LATER} PSNR automatic {psnr(automatic, truth[LATER]):.2f} dB, "
        f"with the keyframe {psnr(guided, truth[LATER]):.2f} dB"
    )


if __name__ == "__main__":
    main()
