"""The ``vidcolor`` command line: colorize (videos and images), frames, train, eval, serve."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import click

from vidcolor.memory import limit_malloc_arenas

limit_malloc_arenas()  # before torch, numba and FFmpeg start threads

from vidcolor import __version__  # noqa: E402
from vidcolor.batch import run_colorize  # noqa: E402
from vidcolor.bins import ANNEAL_TEMPERATURE  # noqa: E402
from vidcolor.colorizer import ColorizerSpec  # noqa: E402
from vidcolor.decoding import ALL_DECODINGS  # noqa: E402
from vidcolor.errors import VidcolorError  # noqa: E402
from vidcolor.film.job import FilmOptions  # noqa: E402
from vidcolor.film.ray import RayCluster  # noqa: E402
from vidcolor.film.sink import EncoderSettings  # noqa: E402
from vidcolor.models.lite0_unet import DECODERS  # noqa: E402
from vidcolor.models.vidnet import VidNetConfig  # noqa: E402
from vidcolor.mrf import READOUTS, UNARIES, MRFSettings  # noqa: E402
from vidcolor.runtime import PRECISIONS, RUNTIMES  # noqa: E402
from vidcolor.train.config import TrainConfig  # noqa: E402

# `train` and `eval` import their modules when run: those pull in scipy.stats and the report's
# drawing, which colorizing never needs.


class DefaultGroup(click.Group):
    """A group whose first argument, when it names no sub-command, goes to ``colorize``."""

    default_command = "colorize"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = [self.default_command, *args]
        elif not args:
            args = [self.default_command, "--help"]
        ctx.meta["vidcolor.argv"] = list(args)
        return super().parse_args(ctx, args)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vidcolor")
def main() -> None:
    """Colorize black-and-white films and photographs.

    \b
      vidcolor film.mp4 -o film_color.mp4     colorize a film (audio and subtitles kept)
      vidcolor photo.jpg                      writes photo_color.jpg
      vidcolor train DATA_DIR --out runs/x    train a colorizer
      vidcolor eval photos/ -o report/        measure quality against ground truth
    """


def option_from(settings: type, field: str, *names: str, **kwargs: object) -> Callable:
    """A click option whose default (shown in --help) is ``settings``'s default for ``field``."""
    return click.option(*names, default=getattr(settings, field), show_default=True, **kwargs)


def model_options(function):
    """Options shared by the commands that run a model: each named as the
    :class:`~vidcolor.colorizer.ColorizerSpec` field it sets, and defaulting to it."""
    options = [
        option_from(
            ColorizerSpec,
            "model",
            "--model",
            help="'default', or a weight file (.safetensors, or Zhang et al.'s eccv16/siggraph17 .pth).",
        ),
        option_from(
            ColorizerSpec,
            "size",
            "--size",
            type=int,
            help="Network input area as the side of a square, in pixels (multiple of 32 for the default model, 16 for "
            "vidnet); each frame keeps its proportions (a 16:9 film at 256 goes in as 192x352).",
        ),
        option_from(ColorizerSpec, "device", "--device", help="auto, cpu, cuda or cuda:N."),
        click.option(
            "--temperature",
            type=float,
            help="Temperature the annealed mean and --decode mrf read the network's distribution at (lower: fewer "
            f"casts on near-neutral content, calmer colours; default: the model card's, else {ANNEAL_TEMPERATURE}).",
        ),
        option_from(
            ColorizerSpec,
            "runtime",
            "--runtime",
            type=click.Choice(RUNTIMES),
            help="Where the network runs: auto picks OpenVINO, else ONNX Runtime, on the CPU (exported once "
            "and cached) and PyTorch on a GPU.",
        ),
        option_from(
            ColorizerSpec,
            "precision",
            "--precision",
            type=click.Choice(PRECISIONS),
            help="The network's arithmetic: auto is bf16 on a GPU; on the CPU mixed where OpenVINO runs on a CPU "
            "with AVX512-BF16 or AMX (the first layers in f32, the rest in bf16: about 2x f32, colours 0.06-0.11 "
            "Lab units from it), else f32. bf16 throughout: about 2.5x f32, colours moved by 0.23-0.86 Lab units.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output file, or a folder for several inputs.")
@model_options
@click.option(
    "--decode",
    "decode_method",
    type=click.Choice(ALL_DECODINGS),
    help="How a colour distribution becomes a colour (default: the model card's choice).",
)
@option_from(
    MRFSettings,
    "iterations",
    "--mrf-iters",
    type=int,
    help="Mean-field sweeps of --decode mrf.",
)
@option_from(
    MRFSettings,
    "sigma",
    "--mrf-sigma",
    type=float,
    help="Lightness similarity scale of the MRF: w = exp(-(L_i - L_j)^2 / sigma), L in [0, 1].",
)
@option_from(
    MRFSettings, "unary", "--mrf-unary", type=click.Choice(UNARIES), help="MRF unary: c*p, c*sqrt(p), c*log(p)."
)
@option_from(MRFSettings, "readout", "--mrf-readout", type=click.Choice(READOUTS), help="MRF colour: mode or mean.")
@click.option(
    "--reference",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A colour image whose colour histogram steers the result (global histogram transfer).",
)
@click.option(
    "--no-temporal", is_flag=True, help="Colorize each film frame on its own (no link to the previous frame)."
)
@click.option(
    "--hints",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Colour hints for one photo: an image of its size whose transparent (or, without alpha, black) "
    "pixels are no hint and every other pixel asks for its colour, or JSON points "
    '[{"x": 120, "y": 45, "colour": "#c03020"}, ...] (3x3 px each). The hints spread along the lightness edges.',
)
@click.option(
    "--keyframes",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A folder of colour images of chosen frames, each named by its frame number (000120.png: frame 120 "
    "from the start at the film's frame rate) or its time in seconds (t83.500.png); each colours its shot. "
    "Start from the grey frame `vidcolor frames FILM --at SECONDS -o DIR` writes; a colour photo of the same "
    "scene named the same way steers the shot more loosely.",
)
@option_from(FilmOptions, "batch_size", "--batch-size", type=int, help="Video frames per network batch.")
@click.option("--codec", help="Video encoder for films (default libx264; libvpx-vp9 for .webm).")
@option_from(EncoderSettings, "crf", "--crf", type=int, help="Constant rate factor (libx264/libx265).")
@option_from(EncoderSettings, "preset", "--preset", help="Encoder preset (libx264/libx265).")
@click.option(
    "--accept-truncated",
    is_flag=True,
    help="Colorize a film whose frames end short of the length it declares (with a notice saying what is "
    "missing) instead of refusing it.",
)
@option_from(
    FilmOptions,
    "segment_seconds",
    "--segment-seconds",
    type=click.FloatRange(min=0),
    help="Colorize films longer than two segments in segments of about this length (cut at keyframes), "
    "kept beside the output until it is done, so that the same command resumes after a crash; 0: one pass.",
)
@click.option("--no-resume", is_flag=True, help="Start a film afresh even if an earlier run left finished segments.")
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: this process; ray: the segments of all films as tasks on Ray workers (pip install 'vidcolor[ray]').",
)
@click.option("--ray-address", help="--engine ray: join this running Ray cluster (default: start a local one).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="--engine ray: colorizers to run (default: one per GPU, else one per 2 CPU cores of the cluster).",
)
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and a final summary.")
def colorize(
    inputs: tuple[Path, ...],
    output: Path | None,
    decode_method: str | None,
    mrf_iters: int,
    mrf_sigma: float,
    mrf_unary: str,
    mrf_readout: str,
    reference: Path | None,
    no_temporal: bool,
    hints: Path | None,
    keyframes: Path | None,
    batch_size: int,
    codec: str | None,
    crf: int,
    preset: str,
    accept_truncated: bool,
    segment_seconds: float,
    no_resume: bool,
    engine: str,
    ray_address: str | None,
    workers: int | None,
    overwrite: bool,
    quiet: bool,
    **model: object,
) -> None:
    """Colorize images and videos (told apart by their content)."""
    if engine != "ray" and (ray_address or workers):
        raise click.BadParameter("only with --engine ray", param_hint="--ray-address/--workers")
    if batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch-size")
    if mrf_iters < 1:
        raise click.BadParameter("must be at least 1", param_hint="--mrf-iters")
    if mrf_sigma <= 0:
        raise click.BadParameter("must be positive", param_hint="--mrf-sigma")

    spec = ColorizerSpec(
        decode_method=decode_method,
        mrf=MRFSettings(iterations=mrf_iters, sigma=mrf_sigma, unary=mrf_unary, readout=mrf_readout),
        temporal=not no_temporal,
        reference=reference,
        **model,
    )
    film_options = FilmOptions(
        EncoderSettings(codec, crf, preset),
        batch_size=batch_size,
        accept_truncated=accept_truncated,
        segment_seconds=segment_seconds,
        resume=not no_resume,
        keyframes=keyframes,
    )
    ray = RayCluster(ray_address, workers) if engine == "ray" else None
    failures = run_colorize(
        list(inputs), output, spec, film_options=film_options, overwrite=overwrite, quiet=quiet, ray=ray, hints=hints
    )
    sys.exit(1 if failures else 0)


@main.command()
@click.argument("film", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--at", "times", multiple=True, required=True, type=float, help="A time in seconds (repeat it).")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder.")
def frames(film: Path, times: tuple[float, ...], output: Path) -> None:
    """Write the frames of FILM at the given times as PNG files named for --keyframes (t83.520.png):
    colour them in any photo editor, then colorize with --keyframes OUTPUT."""
    from vidcolor.keyframes import export_frames

    try:
        for path in export_frames(film, list(times), output):
            click.echo(str(path))
    except VidcolorError as error:
        click.echo(f"vidcolor: error: {error}", err=True)
        sys.exit(1)


@main.command()
@click.argument("data", nargs=-1, required=True)
@option_from(
    TrainConfig,
    "out",
    "--out",
    type=click.Path(path_type=Path),
    help="Folder for checkpoints and the exported model.",
)
@click.option(
    "--val", type=click.Path(exists=True, path_type=Path), help="Folder of colour images to validate on each epoch."
)
@click.option(
    "--val-held-out",
    is_flag=True,
    help="Validate on the training folders' held-out files (--hold-out) too: with ../shared/data/val, the model "
    "card's validation set (docs/MODEL_SELECTION.md). With the train extra, validation also reports the "
    "perceptual figures (Frechet distance, classifier agreement) and keeps the lowest Frechet distance as best.",
)
@option_from(
    TrainConfig,
    "loss",
    "--loss",
    type=click.Choice(["classification", "regression"]),
)
@option_from(
    TrainConfig,
    "bins",
    "--bins",
    type=click.Choice(["gamut", "data"]),
    help="In-gamut ab cells, or the cells present in the data.",
)
@option_from(
    TrainConfig,
    "arch",
    "--arch",
    type=click.Choice(["lite0-unet", "vidnet"]),
    help="lite0-unet: EfficientNet-Lite0 encoder from ImageNet weights (needs vidcolor[train]); "
    "vidnet: small, from scratch.",
)
@click.option(
    "--size",
    default=str(TrainConfig.size),
    show_default=True,
    help="Training crop side in pixels (multiple of 32), or a schedule of sides used over equal parts "
    "of the run, e.g. 128,160,192.",
)
@click.option("--epochs", type=int, help="Passes over the data (default 1 unless --steps).")
@click.option("--steps", type=int, help="Optimiser steps in all (overrides --epochs).")
@click.option("--max-minutes", type=float, help="Stop (checkpointed and exported) after this long.")
@option_from(TrainConfig, "batch_size", "--batch-size", type=int)
@option_from(TrainConfig, "lr", "--lr", type=float, help="Learning rate of the parts new to training.")
@click.option("--encoder-lr", type=float, help="Learning rate of the pretrained encoder (default: --lr / 5).")
@option_from(
    TrainConfig,
    "ema",
    "--ema",
    type=float,
    help="Decay of the exported weight average (0: none).",
)
@option_from(
    TrainConfig,
    "hold_out",
    "--hold-out",
    type=click.FloatRange(0, 0.9),
    help="Keep this fraction of every training folder out of training (chosen by file-name hash; "
    "`vidcolor eval --held-out` scores the same files).",
)
@click.option(
    "--widths",
    help="vidnet channel widths at 1/2, 1/4, 1/8, 1/16 "
    f"(default: {','.join(map(str, VidNetConfig.widths))}, or the --init model's own).",
)
@click.option(
    "--decoder",
    type=click.Choice(DECODERS),
    help="lite0-unet decoder convolutions: dense 3x3, or separable (1x1 then depthwise 3x3; faster). "
    "Default: dense, or the --init model's own; a different one with --init keeps the init's encoder and "
    "every other tensor of matching shape, the rest starting afresh.",
)
@option_from(TrainConfig, "rebalance_lambda", "--rebalance-lambda", type=float)
@click.option(
    "--degrade", is_flag=True, help="Old-film degradations (grain, blur, fading, tone, scratches) on the input."
)
@option_from(
    TrainConfig,
    "low_colour",
    "--low-colour",
    type=click.FloatRange(0, 1),
    help="Share of each batch whose target colours are faded to 0-35 %: low-colour scenes (near-white "
    "walls, overcast streets) that the colourful training sets lack.",
)
@option_from(
    TrainConfig,
    "consistency",
    "--consistency",
    type=click.FloatRange(0),
    help="Weight of a shift-consistency term: each crop is also seen moved by up to 8 px with fresh grain, "
    "and the divergence between the two colourings of the content both show joins the loss (films: colours "
    "that hold still as the camera moves). Costs a second pass: about half the images a second.",
)
@option_from(
    TrainConfig,
    "consistency_free",
    "--consistency-free",
    type=click.FloatRange(0),
    help="With --consistency: hold only near-grey targets still, the weight falling from 1 at grey to 0 "
    "at this chroma (ab units, e.g. 20), so coloured regions stay free to take their colours (0: everywhere).",
)
@click.option("--val-limit", type=int, help="Validate on at most this many images.")
@option_from(TrainConfig, "checkpoint_every", "--checkpoint-every", type=int)
@click.option("--val-every", type=int, help="Steps between validations (default: every epoch).")
@option_from(TrainConfig, "workers", "--workers", type=int, help="Threads loading images.")
@option_from(TrainConfig, "device", "--device")
@option_from(TrainConfig, "seed", "--seed", type=int)
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
@click.option(
    "--init",
    "init_weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Start from a model's weights (e.g. vidcolor/weights/default.safetensors), fresh optimiser.",
)
@click.option(
    "--teacher",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Learn this model's colour distributions (distillation) instead of the images' colours, e.g. a "
    "faster student of vidcolor/weights/default.safetensors; the bins must match.",
)
def train(
    data: tuple[Path, ...],
    out: Path,
    val: Path | None,
    size: str,
    widths: str | None,
    decoder: str | None,
    resume: bool,
    init_weights: Path | None,
    teacher: Path | None,
    **settings: object,
) -> None:
    """Train a colorizer on folders of colour images.

    DATA are folders (searched recursively), each optionally with a sampling share:
    `train/=0.45 train/utkface=0.3 train/intel-scenes=0.25` draws 30 % of the images from the faces
    whatever their number (a folder's own subfolders given beside it count apart).
    """
    from vidcolor.train.loop import train as run_training

    sizes = _crop_sides(size)
    if not 0 <= settings["ema"] < 1:
        raise click.BadParameter("must be in [0, 1)", param_hint="--ema")
    if settings["consistency"] and (teacher or settings["loss"] != "classification"):
        raise click.BadParameter("needs the classification loss without a teacher", param_hint="--consistency")
    if settings["consistency_free"] and not settings["consistency"]:
        raise click.BadParameter("needs --consistency", param_hint="--consistency-free")
    # the architecture's settings the command line gives (the rest: its defaults, or the --init model's)
    net: dict = {"decoder": decoder} if decoder else {}
    if widths:
        net["widths"] = list(_widths(widths))
    config = TrainConfig(
        data=[str(d) for d in data],
        out=str(out),
        val=str(val) if val else None,
        size=sizes[-1],
        size_schedule=sizes if len(sizes) > 1 else [],
        init=str(init_weights) if init_weights else None,
        teacher=str(teacher) if teacher else None,
        net=net,
        command="vidcolor " + shlex.join(click.get_current_context().meta.get("vidcolor.argv", sys.argv[1:])),
        **settings,
    )
    run_training(config, resume=resume)


def _crop_sides(size: str) -> list[int]:
    """``--size``: one crop side, or a schedule of comma-separated sides (multiples of 32)."""
    try:
        sizes = [int(side) for side in size.split(",")]
    except ValueError:
        raise click.BadParameter("a side in pixels, or comma-separated sides", param_hint="--size") from None
    if any(side <= 0 or side % 32 for side in sizes):
        raise click.BadParameter("every side must be a positive multiple of 32", param_hint="--size")
    return sizes


def _widths(widths: str) -> tuple[int, ...]:
    """``--widths``: four comma-separated channel widths."""
    try:
        values = tuple(int(w) for w in widths.split(","))
        if len(values) != 4:
            raise ValueError
    except ValueError:
        raise click.BadParameter("four comma-separated integers", param_hint="--widths") from None
    return values


@main.command(name="eval")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    default="vidcolor-report",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Folder for the report (index.html, metrics.json, metrics.csv, pictures).",
)
@model_options
@click.option(
    "--decode",
    "decodings",
    multiple=True,
    type=click.Choice(ALL_DECODINGS),
    help="Decodings to compare (repeat the option); default: the model card's.",
)
@click.option("--max-frames", default=150, show_default=True, type=int, help="Frames read from each clip.")
@click.option(
    "--held-out",
    type=click.FloatRange(0, 0.9, min_open=True),
    help="Score only the files `vidcolor train --hold-out FRACTION` kept out of training (of every input, "
    "or with --held-out-of, of those folders only).",
)
@click.option(
    "--held-out-of",
    "held_out_of",
    multiple=True,
    type=click.Path(path_type=Path, exists=True),
    help="Training folders whose held-out files (--held-out) are scored beside INPUTS, e.g. "
    "`vidcolor eval ../shared/data/val --held-out-of ../shared/data/train --held-out 0.1` (the model card's "
    "validation set).",
)
@click.option(
    "--perceptual/--no-perceptual",
    default=True,
    show_default=True,
    help="Judge photos with a frozen ImageNet classifier (Frechet distance, agreement; needs vidcolor[train]).",
)
@click.option("--no-temporal", is_flag=True, help="Decode clip frames independently.")
@click.option("--quiet", "-q", is_flag=True)
def evaluate(
    inputs: tuple[Path, ...],
    output: Path,
    decodings: tuple[str, ...],
    max_frames: int,
    held_out: float | None,
    held_out_of: tuple[Path, ...],
    perceptual: bool,
    no_temporal: bool,
    quiet: bool,
    **model: object,
) -> None:
    """Measure colorizations of colour photos and clips (turned grey) against the originals."""
    from vidcolor.report import EvalChoice, run_eval

    if held_out_of and not held_out:
        click.echo("vidcolor: error: --held-out-of needs --held-out FRACTION (as given to vidcolor train)", err=True)
        sys.exit(2)
    spec = ColorizerSpec(decode_method=decodings[0] if decodings else None, temporal=not no_temporal, **model)
    choice = EvalChoice(decodings, max_frames, held_out, held_out_of, perceptual)
    failures = run_eval(list(inputs), output, spec, choice, quiet)
    sys.exit(1 if failures else 0)


@main.command()
@click.argument("folder", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_options
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback exposes the folder and the colorizer to the network.",
)
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@option_from(
    FilmOptions,
    "segment_seconds",
    "--segment-seconds",
    type=click.FloatRange(min=0),
    help="Film jobs longer than two segments run in segments of about this length, kept beside the output "
    "until it is done, so that a cancelled or crashed job resumes when started again; 0: one pass.",
)
@click.option(
    "--max-upload",
    default=2000.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Largest upload accepted, in MB.",
)
def serve(folder: Path, host: str, port: int, max_upload: float, segment_seconds: float, **model: object) -> None:
    """A local web page to colorize, compare, steer and batch the photos and films of FOLDER
    (it serves nothing outside it; uploaded films go to FOLDER/uploads, keyframes made on the
    page to FOLDER/keyframes/<film stem>/). Needs the web extra: pip install 'vidcolor[web]'."""
    try:
        import logging

        from werkzeug.serving import make_server

        from vidcolor.web.server import create_app

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    except ImportError as error:
        click.echo(f"vidcolor: error: serve needs the web extra ({error}): pip install 'vidcolor[web]'", err=True)
        sys.exit(2)
    films = FilmOptions(segment_seconds=segment_seconds)
    app = create_app(folder, ColorizerSpec(**model), upload_limit=int(max_upload * 1e6), film_base=films)
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as error:
        click.echo(f"vidcolor: error: cannot listen on {host}:{port} ({error.strerror or error})", err=True)
        sys.exit(1)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"vidcolor: note: listening on {host}: anyone who reaches this machine can use the page", err=True)
    click.echo(f"vidcolor serve: {folder.resolve()} at http://{host}:{server.server_port}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")


if __name__ == "__main__":
    main()
