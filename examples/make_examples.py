"""Build the bundled examples from scikit-image's sample photos (run from the project root).

    python examples/make_examples.py

Writes ``astronaut_bw.jpg`` and ``coffee_bw.jpg`` (grey photos) and ``pan_bw.mp4``: 3 seconds of
a slow grey pan across both photos (320x240, 24 fps, H.264) with a generated AAC tone, a small
stand-in for a black-and-white film with sound.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image
from skimage import data
from skimage.color import rgb2gray

HERE = Path(__file__).resolve().parent


def grey(image: np.ndarray) -> np.ndarray:
    return (rgb2gray(image) * 255).round().astype(np.uint8)


def main() -> None:
    astronaut, coffee = grey(data.astronaut()), grey(data.coffee())
    Image.fromarray(astronaut).save(HERE / "astronaut_bw.jpg", quality=92)
    Image.fromarray(coffee).save(HERE / "coffee_bw.jpg", quality=92)

    strip = np.concatenate([np.asarray(Image.fromarray(im).resize((400, 300))) for im in (astronaut, coffee)], axis=1)
    fps, frames, width, height = 24, 72, 320, 240
    with av.open(str(HERE / "pan_bw.mp4"), "w") as container:
        video = container.add_stream("libx264", rate=fps, options={"crf": "26", "preset": "slow"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=44100)
        audio.layout = "mono"
        for i in range(frames):
            left = int(i * (strip.shape[1] - width * 1.25) / (frames - 1))
            window = strip[20 : 20 + 300, left : left + 400]
            frame = np.asarray(Image.fromarray(window).resize((width, height), Image.Resampling.BILINEAR))
            video_frame = av.VideoFrame.from_ndarray(np.repeat(frame[..., None], 3, axis=2), format="rgb24")
            video_frame.pts = i
            video_frame.time_base = Fraction(1, fps)
            for packet in video.encode(video_frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        t = np.arange(int(44100 * frames / fps)) / 44100
        tone = (0.2 * np.sin(2 * np.pi * 220 * t) * np.minimum(1, t * 4)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = tone[start : start + 1024]
            audio_frame = av.AudioFrame.from_ndarray(chunk[None], format="flt", layout="mono")
            audio_frame.sample_rate = 44100
            audio_frame.pts = start
            audio_frame.time_base = Fraction(1, 44100)
            for packet in audio.encode(audio_frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)


if __name__ == "__main__":
    main()
