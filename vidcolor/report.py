"""``vidcolor eval``: the report of colour ground truth turned grey and colorized.

For every photo and clip, each decoding asked for and the grey baseline (a = b = 0) are
scored against the original by :mod:`vidcolor.evaluation` (the scoring path of training and
the model card): PSNR, SSIM, AuC, colourfulness, its ratio to the truth's and delta-CF, and
for clips also TAE and CDC beside the truth's CDC (and their ratio). Photos are also judged by
a frozen ImageNet classifier (:mod:`vidcolor.perceptual`, when the ``train`` extra is
installed): each variant's top-1 agreement with the classifier's answer on the truth, and over
the set, the Frechet distance of its features to the truth's. This module only renders.
The report folder gets ``metrics.json``, ``metrics.csv``,
pictures (a contact sheet per photo; a side-by-side MP4 and a strip of frames per clip) and an
``index.html`` that shows them all and works opened from disk.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image, ImageDraw
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from vidcolor.color import rgb_to_lab
from vidcolor.colorizer import Colorizer, ColorizerSpec
from vidcolor.errors import VidcolorError, one_file
from vidcolor.evaluation import CLIP_METRICS, PHOTO_METRICS, colorize_variants, load_rgb, mean_scores, score_frames
from vidcolor.film.source import read_rgb_frames
from vidcolor.inputs import expand_inputs, is_held_out, sniff_kind
from vidcolor.perceptual import SetJudgement, load_judge

PANEL_HEIGHT = 192
PERCEPTUAL_METRICS = ("frechet", "agreement")
METRIC_NAMES = tuple(m for m in PHOTO_METRICS if m != "true_colourfulness") + PERCEPTUAL_METRICS + CLIP_METRICS


@dataclass
class ItemResult:
    """Scores of one photo or clip: ``scores[variant][metric]``; ``pictures``: report-relative paths."""

    name: str
    kind: str
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    pictures: list[str] = field(default_factory=list)
    frames: int = 1


def _label(image: Image.Image, text: str) -> Image.Image:
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 8 + 7 * len(text), 16), fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 255))
    return image


def _panel(rgb: torch.Tensor, label: str | None = None) -> Image.Image:
    array = (rgb.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    image = Image.fromarray(array)
    width = max(2, round(image.width * PANEL_HEIGHT / image.height))
    image = image.resize((width + width % 2, PANEL_HEIGHT), Image.Resampling.BILINEAR)
    return _label(image, label) if label else image


def _row(panels: list[Image.Image]) -> Image.Image:
    sheet = Image.new("RGB", (sum(p.width for p in panels), PANEL_HEIGHT))
    x = 0
    for panel in panels:
        sheet.paste(panel, (x, 0))
        x += panel.width
    return sheet


class Evaluator:
    """Scores every decoding on ground truth (through :mod:`vidcolor.evaluation`) and draws the pictures."""

    def __init__(
        self,
        colorizer: Colorizer,
        decodings: list[str],
        out: Path,
        max_frames: int,
        judgement: SetJudgement | None,
    ) -> None:
        self.colorizer = colorizer
        self.decodings = decodings
        self.out = out
        self.max_frames = max_frames
        self.judgement = judgement

    def photo(self, path: Path) -> ItemResult:
        truth = load_rgb(path)[None]
        variants = colorize_variants(self.colorizer, self.decodings, rgb_to_lab(truth.double()).float()[:, :1])
        result = ItemResult(path.name, "photo", scores=score_frames(variants, truth))
        if self.judgement is not None:
            agrees = self.judgement.add(str(path), truth, {name: v.rgb for name, v in variants.items()})
            for name, value in agrees.items():
                result.scores[name]["agreement"] = value
        panels = [_panel(variants["grey"].rgb[0], "grey input")]
        panels += [_panel(variants[m].rgb[0], m) for m in self.decodings]
        panels.append(_panel(truth[0], "ground truth"))
        picture = Path("photos") / f"{path.stem}.png"
        (self.out / picture).parent.mkdir(parents=True, exist_ok=True)
        _row(panels).save(self.out / picture)
        result.pictures.append(str(picture))
        return result

    def _read_clip(self, path: Path) -> tuple[torch.Tensor, float]:
        frames, rate = read_rgb_frames(path, self.max_frames)
        if len(frames) < 2:
            raise VidcolorError(f"{path}: needs at least two decodable frames for video metrics")
        return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255, rate

    def clip(self, path: Path) -> ItemResult:
        truth, rate = self._read_clip(path)
        lightness = torch.cat([rgb_to_lab(chunk.double()).float()[:, :1] for chunk in truth.split(16)])
        variants = colorize_variants(self.colorizer, self.decodings, lightness, film=True)
        result = ItemResult(path.name, "video", scores=score_frames(variants, truth, clip=True), frames=len(truth))
        order = ["grey", *self.decodings, "truth"]
        streams = {**{k: v.rgb for k, v in variants.items()}, "truth": truth}
        movie = Path("videos") / f"{path.stem}.mp4"
        (self.out / movie).parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(self.out / movie), "w") as container:
            stream = container.add_stream("libx264", rate=round(rate) or 25, options={"crf": "20", "preset": "fast"})
            first = _row([_panel(streams[k][0], k) for k in order])
            stream.width, stream.height, stream.pix_fmt = first.width, first.height, "yuv420p"
            for t in range(len(truth)):
                sheet = _row([_panel(streams[k][t], k) for k in order])
                for packet in stream.encode(av.VideoFrame.from_image(sheet)):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        strip_frames = np.linspace(0, len(truth) - 1, min(6, len(truth))).round().astype(int)
        rows = [_row([_panel(streams[k][t], k if i == 0 else None) for i, t in enumerate(strip_frames)]) for k in order]
        strip = Image.new("RGB", (rows[0].width, PANEL_HEIGHT * len(rows)))
        for i, row in enumerate(rows):
            strip.paste(row, (0, i * PANEL_HEIGHT))
        strip_path = Path("videos") / f"{path.stem}_strip.png"
        strip.save(self.out / strip_path)
        result.pictures += [str(movie), str(strip_path)]
        return result


def _format(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def summarise(
    results: list[ItemResult], frechet: dict[str, float] | None = None
) -> dict[str, dict[str, dict[str, float]]]:
    """Mean scores per kind (photo / video) and variant (:func:`evaluation.mean_scores`), with
    each photo variant's Frechet distance over the set when ``frechet`` gives it."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for kind in ("photo", "video"):
        items = [r for r in results if r.kind == kind]
        if not items:
            continue
        summary[kind] = {variant: mean_scores([r.scores[variant] for r in items]) for variant in items[0].scores}
        if kind == "photo" and frechet:
            for variant, row in summary[kind].items():
                if math.isfinite(frechet.get(variant, math.nan)):
                    row["frechet"] = frechet[variant]
    return summary


def write_report(results: list[ItemResult], out: Path, settings: dict, frechet: dict[str, float] | None = None) -> dict:
    """Write metrics.json, metrics.csv and index.html; returns the summary (``frechet``: the
    photo variants' Frechet distances, :func:`summarise`)."""
    summary = summarise(results, frechet)
    payload = {
        "settings": settings,
        "summary": summary,
        "items": [
            {"name": r.name, "kind": r.kind, "frames": r.frames, "scores": r.scores, "pictures": r.pictures}
            for r in results
        ],
    }
    (out / "metrics.json").write_text(json.dumps(payload, indent=2, allow_nan=True) + "\n")
    with (out / "metrics.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "kind", "variant", *METRIC_NAMES])
        for r in results:
            for variant, scores in r.scores.items():
                writer.writerow([r.name, r.kind, variant, *[scores.get(m, "") for m in METRIC_NAMES]])
    (out / "index.html").write_text(_html(results, summary, settings))
    return summary


def _table_html(rows: dict[str, dict[str, float]]) -> str:
    columns = [m for m in METRIC_NAMES if any(m in s for s in rows.values())]
    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join(
        f"<tr><td>{html.escape(v)}</td>"
        + "".join(f"<td>{_format(s.get(c, float('nan')))}</td>" for c in columns)
        + "</tr>"
        for v, s in rows.items()
    )
    return f"<table><tr><th>variant</th>{head}</tr>{body}</table>"


def _html(results: list[ItemResult], summary: dict, settings: dict) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>vidcolor evaluation</title><style>",
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}"
        "img,video{max-width:100%}",
        "</style></head><body><h1>vidcolor evaluation</h1>",
        f"<p>{html.escape(json.dumps(settings))}</p>",
    ]
    for kind, rows in summary.items():
        parts.append(f"<h2>Mean over {kind}s</h2>{_table_html(rows)}")
    for r in results:
        parts.append(f"<h3>{html.escape(r.name)}</h3>{_table_html(r.scores)}")
        for picture in r.pictures:
            src = html.escape(picture)
            if picture.endswith(".mp4"):
                parts.append(f"<video src='{src}' controls loop muted></video>")
            else:
                parts.append(f"<a href='{src}'><img src='{src}' alt='{html.escape(r.name)}'></a>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def print_summary(summary: dict, console: Console) -> None:
    for kind, rows in summary.items():
        table = Table(title=f"mean over {kind}s")
        columns = [m for m in METRIC_NAMES if any(m in s for s in rows.values())]
        table.add_column("variant")
        for column in columns:
            table.add_column(column, justify="right")
        for variant, scores in rows.items():
            table.add_row(variant, *[_format(scores.get(c, float("nan"))) for c in columns])
        console.print(table)


@dataclass(frozen=True)
class EvalChoice:
    """What ``vidcolor eval`` scores: ``decodings`` (empty: the card's), frames per clip, and
    with ``held_out`` only the files training's ``--hold-out`` kept out (of every input, or with
    ``held_out_of`` of those folders, beside every input); ``perceptual``: judge photos with the
    ImageNet classifier too."""

    decodings: tuple[str, ...]
    max_frames: int
    held_out: float | None
    held_out_of: tuple[Path, ...]
    perceptual: bool


def _eval_files(inputs: list[Path], choice: EvalChoice, console: Console, report: Callable[[str], None]) -> list[Path]:
    """The files to score: every input (recursively), with held-out files as ``choice`` says."""
    files = expand_inputs(inputs, recursive=True, report=report, note=lambda m: console.print(m, highlight=False))
    if choice.held_out and choice.held_out_of:
        training = expand_inputs(list(choice.held_out_of), recursive=True, report=report, note=lambda m: None)
        files += [f for f in training if is_held_out(f, choice.held_out)]
    elif choice.held_out:
        files = [f for f in files if is_held_out(f, choice.held_out)]
    return files


def _judgement(perceptual: bool, console: Console) -> SetJudgement | None:
    """The perceptual judge (None when not asked for, or not installed: said so)."""
    if not perceptual:
        return None
    try:
        return SetJudgement(load_judge())
    except VidcolorError:
        console.print(
            "note: no perceptual figures (Frechet distance, classifier agreement): they need the ImageNet "
            "classifier of pip install 'vidcolor[train]'",
            highlight=False,
            markup=False,
        )
        return None


def run_eval(inputs: list[Path], out: Path, spec: ColorizerSpec, choice: EvalChoice, quiet: bool = False) -> int:
    """Evaluate every input (:func:`_eval_files`) with the colorizer of ``spec``, each decoding of
    ``choice``, and write the report into ``out``; returns the number of failures."""
    console = Console(stderr=True, soft_wrap=True)
    failures = 0

    def report(message: str) -> None:
        nonlocal failures
        failures += 1
        console.print(f"[red]vidcolor: error:[/red] {message}", highlight=False)

    try:
        colorizer = spec.build()
    except VidcolorError as error:
        report(str(error))
        return failures
    decodings = list(dict.fromkeys(choice.decodings)) or [colorizer.decode.method]
    files = _eval_files(inputs, choice, console, report)
    out.mkdir(parents=True, exist_ok=True)
    judgement = _judgement(choice.perceptual, console)
    evaluator = Evaluator(colorizer, decodings, out, choice.max_frames, judgement)
    results: list[ItemResult] = []
    with Progress(
        TextColumn("[bold]evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
    ) as progress:
        task = progress.add_task("eval", total=len(files))
        for path in files:
            with one_file(path, report):
                kind = sniff_kind(path)
                results.append(evaluator.photo(path) if kind == "image" else evaluator.clip(path))
            progress.advance(task)
    if not results:
        console.print(f"nothing evaluated ({failures} failed)")
        return failures
    settings = {
        "decodings": decodings,
        "size": colorizer.size,
        "model": spec.model,
        "max_frames": choice.max_frames,
        "held_out": choice.held_out,
        "held_out_of": [str(p) for p in choice.held_out_of],
    }
    frechet = {name: row["frechet"] for name, row in judgement.figures().items()} if judgement else None
    print_summary(write_report(results, out, settings, frechet), Console(soft_wrap=True))
    console.print(
        f"evaluated {len(results)} of {len(results) + failures} input(s); report in {out / 'index.html'}",
        highlight=False,
    )
    return failures
