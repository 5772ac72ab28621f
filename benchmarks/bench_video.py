"""Throughput of the film pipeline beside its stages, per runtime, and its memory on long films.

    python benchmarks/bench_video.py [--clip FILM | --width 1920 --height 1080] [--frames 300]
        [--runtimes torch,openvino,openvino:mixed,openvino:bf16] [--decode mrf] [--device auto]
        [--model default] [--memory]

Prints, for one clip (generated: a keyframe every second), frames/s of: decode alone (PyAV,
threaded, luma extracted), encode alone (a bare PyAV transcode of the same clip with the same
encoder settings), and, for each runtime (default: every one installed, in f32, and OpenVINO in
mixed precision and bf16 on a CPU with native bf16), the network alone
(batched luma -> chroma planes) and the whole pipeline in one pass (``--segment-seconds 0``)
and in segments (``--segment-seconds``, 2 s by default, so that a short clip is cut several
times), with the pipeline's ratio to its slowest stage (target >= 0.85) and to the bare
transcode (target at 1920x1080: >= 0.6). ``--memory`` also runs the pipeline in a subprocess on
generated 1,000- and 10,000-frame clips and compares peak resident memory (target: ratio <= 1.2).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_model import runtime_variants, variant_name  # noqa: E402
from benchmarks.peak_memory import cli_peak_mib  # noqa: E402
from tests.clips import make_clip  # noqa: E402
from vidcolor.colorizer import ColorizerSpec  # noqa: E402
from vidcolor.film.engine import colorize_film  # noqa: E402
from vidcolor.film.frames import chroma_planes  # noqa: E402
from vidcolor.film.job import FilmJob, FilmOptions  # noqa: E402


def decode_rate(clip: Path) -> tuple[float, int, list[np.ndarray]]:
    """Frames/s of threaded decoding with luma extraction; also returns a few luma planes."""
    start = time.perf_counter()
    count = 0
    sample: list[np.ndarray] = []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if frame.format.name not in ("yuv420p", "yuvj420p"):
                frame = frame.reformat(format="yuv420p")
            plane = frame.planes[0]
            luma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: frame.height, : frame.width]
            if len(sample) < 64:
                sample.append(luma.copy())
            count += 1
    return count / (time.perf_counter() - start), count, sample


def network_rate(colorizer, sample: list[np.ndarray], frames: int, batch_size: int) -> float:
    """Frames/s of luma -> chroma planes on the colorizer's device (host transfers included)."""
    luma = torch.from_numpy(np.stack([sample[i % len(sample)] for i in range(batch_size)]))
    chroma_planes(luma, colorizer)  # warm-up
    if colorizer.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    done = 0
    while done < frames:
        batch = luma.pin_memory() if colorizer.device.type == "cuda" else luma
        u, v = chroma_planes(batch, colorizer)
        u.cpu(), v.cpu()
        done += batch_size
    return done / (time.perf_counter() - start)


def encode_rate(clip: Path, options: FilmOptions) -> float:
    """Frames/s of a PyAV transcode of the clip (decode + encode with the same settings)."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        count = 0
        with av.open(str(clip)) as source, av.open(str(Path(folder) / f"t{clip.suffix}"), "w") as target:
            stream = source.streams.video[0]
            stream.thread_type = "AUTO"
            out = target.add_stream(
                options.encoder.codec or "libx264",
                rate=stream.average_rate or 25,
                options={"crf": str(options.encoder.crf), "preset": options.encoder.preset},
            )
            out.width, out.height, out.pix_fmt = stream.codec_context.width, stream.codec_context.height, "yuv420p"
            out.time_base = out.codec_context.time_base = stream.time_base
            for frame in source.decode(stream):
                frame.pict_type = av.video.frame.PictureType.NONE
                for packet in out.encode(frame):
                    target.mux(packet)
                count += 1
            for packet in out.encode():
                target.mux(packet)
        return count / (time.perf_counter() - start)


def pipeline_rate(clip: Path, colorizer, options: FilmOptions) -> float:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        job = FilmJob(clip, Path(folder) / f"out{clip.suffix}", options)
        summary = colorize_film(job, colorizer, Console(stderr=True), quiet=True)
        elapsed = time.perf_counter() - start
    frames = int(summary.split(": ")[1].split(" frames")[0])
    return frames / elapsed


def peak_memory_mib(clip: Path, size: int, device: str) -> float:
    """Peak RSS (MiB) of ``vidcolor`` colorizing ``clip`` in a child process."""
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / f"o{clip.suffix}"
        return cli_peak_mib(str(clip), "-o", str(target), "--size", str(size), "--device", device, "--quiet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, help="a film to measure on (default: a generated clip)")
    parser.add_argument("--frames", type=int, default=300, help="length of the generated clip")
    parser.add_argument("--width", type=int, default=640, help="width of the generated clip")
    parser.add_argument("--height", type=int, default=360, help="height of the generated clip")
    parser.add_argument(
        "--runtimes",
        help="comma-separated runtime[:precision], e.g. openvino,openvino:mixed (default: every runtime installed "
        "in f32, and openvino:mixed and openvino:bf16 on a CPU with native bf16)",
    )
    parser.add_argument("--decode", help="decoding (default: the model card's)")
    parser.add_argument("--model", default="default", help="model to colorize with (default: the shipped one)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--memory", action="store_true", help="also compare peak memory on 1,000 vs 10,000 frames")
    parser.add_argument("--memory-lengths", default="1000,10000", help="clip lengths (frames) for --memory")
    parser.add_argument("--memory-device", help="device for --memory (default: --device)")
    parser.add_argument("--segment-seconds", type=float, default=2.0, help="segment length of the segmented run")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vidcolor-bench-"))
    clip = args.clip
    if clip is None:
        clip = work / "clip.mp4"
        make_clip(clip, frames=args.frames, width=args.width, height=args.height, fps=25, gop=25)
    options = FilmOptions(batch_size=args.batch_size, segment_seconds=0)
    segmented = FilmOptions(batch_size=args.batch_size, segment_seconds=args.segment_seconds)
    colorizers = {
        variant_name(runtime, precision): ColorizerSpec(
            args.model, args.size, args.device, args.decode, None, runtime=runtime, precision=precision
        ).build()
        for runtime, precision in runtime_variants(args.runtimes)
    }
    first = next(iter(colorizers.values()))
    device_name = (
        torch.cuda.get_device_name() if first.device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    )
    decode_fps, frames, sample = decode_rate(clip)
    encode_fps = encode_rate(clip, options)
    figures = {
        "device": device_name,
        "clip": str(clip if args.clip else f"generated {args.width}x{args.height}, {frames} frames, H.264 + AAC"),
        "frames": frames,
        "size": args.size,
        "batch_size": args.batch_size,
        "decoding": first.decode.method,
        "decode_fps": round(decode_fps, 1),
        "transcode_fps": round(encode_fps, 1),
        "runtimes": {},
    }
    print(
        f"device: {device_name}; clip: {figures['clip']}; network input {args.size} px, batch {args.batch_size}, "
        f"decoding {first.decode.method}"
    )
    print(f"decode alone {decode_fps:.1f} frames/s; bare transcode (decode + encode) {encode_fps:.1f} frames/s")
    print(
        f"{'runtime':<14}{'network':>10}{'pipeline':>10}{'/ slowest':>11}{'/ transcode':>13}"
        f"{'segments':>10}{'/ slowest':>11}"
    )
    for runtime, colorizer in colorizers.items():
        network_fps = network_rate(colorizer, sample, min(frames, 256), args.batch_size)
        pipeline_fps = pipeline_rate(clip, colorizer, options)
        segmented_fps = pipeline_rate(clip, colorizer, segmented)
        slowest = min(decode_fps, network_fps, encode_fps)
        figures["runtimes"][runtime] = {
            "network_fps": round(network_fps, 1),
            "pipeline_fps": round(pipeline_fps, 1),
            "pipeline_over_slowest": round(pipeline_fps / slowest, 3),
            "pipeline_over_transcode": round(pipeline_fps / encode_fps, 3),
            "segmented_fps": round(segmented_fps, 1),
            "segmented_over_slowest": round(segmented_fps / slowest, 3),
        }
        row = figures["runtimes"][runtime]
        print(
            f"{runtime:<14}{network_fps:>10.1f}{pipeline_fps:>10.1f}{row['pipeline_over_slowest']:>11.3f}"
            f"{row['pipeline_over_transcode']:>13.3f}{segmented_fps:>10.1f}{row['segmented_over_slowest']:>11.3f}"
        )
    print("targets: pipeline / slowest stage >= 0.85; at 1920x1080 pipeline / bare transcode >= 0.6")

    if args.memory:
        lengths = [int(n) for n in args.memory_lengths.split(",")]
        device = args.memory_device or args.device
        peaks = {}
        for length in lengths:
            long_clip = work / f"long{length}.mp4"
            make_clip(long_clip, frames=length, width=320, height=180, fps=25)
            peaks[length] = peak_memory_mib(long_clip, 64, device)
            long_clip.unlink()
            print(f"peak memory, {length} frames: {peaks[length]:.0f} MiB", flush=True)
        figures["peak_mib"] = {str(k): round(v, 1) for k, v in peaks.items()}
        figures["peak_ratio"] = round(peaks[lengths[-1]] / peaks[lengths[0]], 3)
        print(
            f"peak memory ratio {lengths[-1]} / {lengths[0]} frames: {figures['peak_ratio']:.3f} "
            f"(target <= 1.2; 320x180 clips, network input 64 px, device {device})"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
