"""The training loop of ``vidcolor train``: resumable, checkpointed, validated, exported.

A checkpoint (``OUT/checkpoint.pt``) holds the model, the optimiser, the step, the
configuration, the bins and the rebalancing weights, so ``--resume`` continues a killed run
exactly where it stopped. Each time validation improves, the model is exported to
``OUT/model.safetensors`` with a JSON model card ``OUT/model.json``.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vidcolor.bins import GRID_SIZE, ab_histogram, data_bins, empirical_prior, gamut_bins, rebalance_weights
from vidcolor.color import rgb_to_lab
from vidcolor.colorizer import Colorizer, ColorizerSpec, resolve_device
from vidcolor.decoding import DecodeSettings
from vidcolor.errors import VidcolorError
from vidcolor.evaluation import evaluate_photos
from vidcolor.inputs import find_images, is_held_out
from vidcolor.models import TRAINABLE, ColorNet, build_model, load_model, save_model
from vidcolor.perceptual import SetJudgement, load_judge
from vidcolor.train.config import TrainConfig
from vidcolor.train.data import (
    DataSource,
    assign_sources,
    load_image_set,
    sampling_probabilities,
    steps_per_epoch,
)
from vidcolor.train.step import StepParts, training_step

# Validation, and so the choice of the exported weights, uses the mean decoding (the best PSNR of
# the decodings measured with benchmarks/tune_decoding.py); the card recommends it.
VALIDATION_DECODING = DecodeSettings(method="mean", temperature=1.0, temporal=False)
CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.safetensors"
SNAPSHOTS = "snapshots"  # the weight average at every validation, OUT/snapshots/step-NNNNNNN.safetensors


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def _learning_rate(config: TrainConfig, step: int, total: int, time_fraction: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 5 % over the steps or the time budget, whichever ends first."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = max(time_fraction, (step - config.warmup_steps) / max(1, total - config.warmup_steps))
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _validate(
    model: ColorNet, val_images: torch.Tensor, device: torch.device, size: int, judgement: SetJudgement | None
) -> dict:
    """Scores of the mean decoding on ``(N, 3, S, S)`` uint8 photos: ``{"model", "grey", "images"}``
    (with ``judgement``, the perceptual figures too: ``frechet``, ``agreement``)."""
    colorizer = Colorizer(model, device, size, VALIDATION_DECODING, runtime="torch", precision=ColorizerSpec.precision)
    return evaluate_photos(colorizer, (image.float() / 255.0 for image in val_images), judgement=judgement)


def _better(scores: dict, best: dict) -> bool:
    """Whether validation ``scores`` beat the best so far: the lower Frechet distance where the
    perceptual figures are measured (docs/MODEL_SELECTION.md), else the higher PSNR."""
    if "frechet" in scores and math.isfinite(scores["frechet"]):
        return scores["frechet"] < best.get("frechet", math.inf)
    return scores["psnr"] > best["psnr"]


def _validation_paths(config: TrainConfig) -> list[Path]:
    """``config.val``'s images, then (``val_held_out``) the training folders' held-out files; at
    most ``val_limit`` of them."""
    paths = find_images([Path(config.val)]) if config.val else []
    if config.val_held_out and config.hold_out > 0:
        folders = [DataSource.parse(spec).folder for spec in config.data]
        paths += [p for p in find_images(folders) if is_held_out(p, config.hold_out)]
    return paths[: config.val_limit]


def _load_training_images(config: TrainConfig, console: Console):
    """The training images in memory and each one's sampling probability."""
    try:
        sources = [DataSource.parse(spec) for spec in config.data]
    except ValueError as error:
        raise SystemExit(f"vidcolor train: {error}") from None
    for source in sources:
        if not source.folder.exists():
            raise SystemExit(f"vidcolor train: {source.folder}: no such folder")
    paths = find_images([s.folder for s in sources], report=lambda m: console.print(m, highlight=False))
    held = [p for p in paths if is_held_out(p, config.hold_out)]
    paths = [p for p in paths if not is_held_out(p, config.hold_out)]
    if not paths:
        raise SystemExit(f"vidcolor train: no images found in {', '.join(str(s.folder) for s in sources)}")
    with _progress(console) as progress:
        task = progress.add_task("loading images", total=len(paths), info="")
        image_set = load_image_set(paths, config.cache_size, config.workers, lambda: progress.advance(task))
    console.print(
        f"{len(image_set.paths)} training images ({image_set.skipped_grey} near-grey and "
        f"{image_set.skipped_unreadable} unreadable skipped, {len(held)} held out), held at {config.cache_size} px"
    )
    if len(image_set.paths) == 0:
        raise SystemExit(
            f"vidcolor train: no usable colour images in {', '.join(str(s.folder) for s in sources)} "
            f"({image_set.skipped_grey} near-grey, {image_set.skipped_unreadable} unreadable)"
        )
    owners = assign_sources(image_set.paths, sources)
    try:
        probabilities = sampling_probabilities(owners, sources)
    except ValueError as error:
        raise SystemExit(f"vidcolor train: {error}") from None
    if any(s.weight is not None for s in sources):
        counts = torch.bincount(torch.tensor(owners), minlength=len(sources)).tolist()
        shares = torch.zeros(len(sources), dtype=torch.float64).index_add_(0, torch.tensor(owners), probabilities)
        for source, count, share in zip(sources, counts, shares.tolist(), strict=True):
            console.print(f"  {source.folder}: {count} images, {share:.0%} of the samples")
    return image_set, probabilities


def _initial_weights(config: TrainConfig, console: Console) -> ColorNet | None:
    if not config.init:
        return None
    initial = load_model(config.init)
    if initial.architecture not in TRAINABLE or initial.kind != config.loss:
        raise SystemExit(f"vidcolor train: --init {config.init}: not a trainable {config.loss} model")
    config.arch = initial.architecture
    config.net = {**initial.config.to_dict(), **config.net}  # what the command line sets wins (the decoder)
    console.print(f"starting from the weights of {config.init} ({config.arch})")
    return initial


def matching_state(model: ColorNet, initial: ColorNet) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of ``initial`` that fit ``model`` (same name and shape), and the names of the
    model's tensors that get none (a different decoder's layers: they start afresh)."""
    own = model.state_dict()
    fitting = {k: v for k, v in initial.state_dict().items() if k in own and own[k].shape == v.shape}
    return fitting, [k for k in own if k not in fitting]


def load_teacher(config: TrainConfig, student: ColorNet, device: torch.device) -> ColorNet | None:
    """The frozen network whose distributions ``--teacher`` asks the student to learn, on ``device``.

    Raises:
        SystemExit: the teacher cannot be read, or gives no distribution over the student's bins at
            the student's resolution.
    """
    if not config.teacher:
        return None
    try:
        teacher = load_model(config.teacher)
    except VidcolorError as error:
        raise SystemExit(f"vidcolor train: --teacher {error}") from None
    if teacher.kind != "classification" or student.kind != "classification":
        raise SystemExit("vidcolor train: --teacher needs a classification teacher and the classification loss")
    if teacher.bins.shape != student.bins.shape or not torch.equal(teacher.bins.cpu(), student.bins.cpu()):
        raise SystemExit(f"vidcolor train: --teacher {config.teacher}: its ab bins differ from the student's")
    if teacher.output_stride != student.output_stride:
        raise SystemExit(
            f"vidcolor train: --teacher {config.teacher}: output at 1/{teacher.output_stride} of the input, "
            f"the student's at 1/{student.output_stride}"
        )
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher.eval().to(device, memory_format=torch.channels_last)


def build_optimizer(model: ColorNet, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the model's own parameter groups (:meth:`ColorNet.parameter_groups`): a
    pretrained part at ``encoder_lr`` (default ``lr`` / 5), as ``lr_scale`` of ``lr``."""
    encoder_lr = config.encoder_lr if config.encoder_lr is not None else config.lr / 5
    groups = model.parameter_groups(encoder_lr / config.lr)
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def weight_average(model: ColorNet, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of ``model``'s weights and batch-norm statistics (None when ``decay`` is 0)."""
    if decay <= 0:
        return None
    return torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True
    )


@dataclass
class _Run:
    """One training run's state across steps: the data, the model and its optimiser, the
    validation set, where the run is and what is best so far."""

    config: TrainConfig
    console: Console
    out: Path
    device: torch.device
    images: torch.Tensor
    probabilities: torch.Tensor
    train_images: int
    bins: torch.Tensor | None
    weights: torch.Tensor | None
    histogram: torch.Tensor
    model: ColorNet
    optimizer: torch.optim.Optimizer
    averaged: torch.optim.swa_utils.AveragedModel | None
    val_images: torch.Tensor | None = None
    judgement: SetJudgement | None = None
    step: int = 0
    best: dict = field(default_factory=lambda: {"psnr": -math.inf, "metrics": None})
    started: float = field(default_factory=time.monotonic)

    @property
    def shipped(self) -> ColorNet:
        """The network that is validated and exported: the weight average when there is one."""
        return self.averaged.module if self.averaged is not None else self.model

    @property
    def per_epoch(self) -> int:
        return steps_per_epoch(len(self.images), self.config.batch_size)

    @property
    def total(self) -> int:
        return self.config.steps or (self.config.epochs or 1) * self.per_epoch

    def time_fraction(self) -> float:
        """The share of ``--max-minutes`` used (0 without a budget)."""
        budget = self.config.max_minutes
        return (time.monotonic() - self.started) / (budget * 60) if budget else 0.0


def train(config: TrainConfig, resume: bool = False, console: Console | None = None) -> Path:
    """Train a colorization network; returns the path of the exported safetensors file."""
    console = console or Console(stderr=True, soft_wrap=True)  # whole lines in logs
    run = _setup(config, resume, console)
    _step_loop(run)
    _save_checkpoint(run)
    if run.val_images is None:
        run.shipped.eval()
        _export(run, None)
    console.print(f"done: step {run.step}, checkpoint {run.out / CHECKPOINT_NAME}, model {run.out / MODEL_NAME}")
    return run.out / MODEL_NAME


def _read_checkpoint(config: TrainConfig, out: Path, resume: bool, console: Console) -> dict | None:
    """``OUT/checkpoint.pt`` with ``resume`` (None: none, or not resuming); the data, bins and
    network settings of ``config`` then come from it, the schedule from the command line."""
    path = out / CHECKPOINT_NAME
    if not resume or not path.exists():
        if resume:
            console.print(f"no checkpoint in {out}; starting afresh")
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        saved = checkpoint["config"]
    except Exception as error:  # noqa: BLE001 - torch's unpickler fails on damaged files in many ways
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise SystemExit(
            f"vidcolor train: {path}: not a readable checkpoint ({first_line}); remove it or start without --resume"
        ) from None
    for key in ("loss", "bins", "size", "net", "rebalance_lambda", "arch"):
        setattr(config, key, saved.get(key, "vidnet" if key == "arch" else None))
    config.size_schedule = saved.get("size_schedule", [])
    console.print(f"resuming from {path} at step {checkpoint['step']}")
    return checkpoint


def _colour_statistics(
    config: TrainConfig, images: torch.Tensor, initial: ColorNet | None, checkpoint: dict | None
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
    """The ab bins, their rebalancing weights (None for regression) and the training images' ab
    histogram: the checkpoint's, else measured (bins: the initial model's, the gamut's or the data's)."""
    if checkpoint is not None:
        return checkpoint.get("bins"), checkpoint.get("weights"), checkpoint.get("histogram")
    histogram = torch.zeros(GRID_SIZE, GRID_SIZE, dtype=torch.float64)
    for chunk in images.split(64):
        lab = rgb_to_lab(chunk.float() / 255.0)
        histogram += ab_histogram(torch.nn.functional.avg_pool2d(lab[:, 1:], 4))
    if config.loss != "classification":
        return None, None, histogram
    if initial is not None:
        bins = initial.bins.cpu()
    else:
        bins = gamut_bins() if config.bins == "gamut" else data_bins(histogram)
    return bins, rebalance_weights(empirical_prior(histogram, bins), config.rebalance_lambda), histogram


def _network(
    config: TrainConfig, bins: torch.Tensor | None, initial: ColorNet | None, fresh: bool, console: Console
) -> ColorNet:
    """The network to train: built from ``config``, with ``initial``'s tensors that fit, or (a
    ``fresh`` run) its pretrained part loaded; its frozen layers frozen."""
    if config.arch not in TRAINABLE:
        raise SystemExit(f"vidcolor train: unknown architecture {config.arch!r}; choose from {', '.join(TRAINABLE)}")
    net_config = {**config.net, "kind": config.loss}
    if config.loss == "classification":
        net_config["num_bins"] = len(bins)
    model = build_model(config.arch, net_config, bins)
    config.net = model.config.to_dict()
    if initial is not None:
        fitting, afresh = matching_state(model, initial)
        model.load_state_dict(fitting, strict=False)
        if afresh:
            console.print(f"{len(afresh)} tensors not in {config.init}'s shape start afresh (e.g. {afresh[0]})")
    elif fresh:
        try:
            loaded = model.load_pretrained()
        except VidcolorError as error:
            raise SystemExit(f"vidcolor train: {error}") from None
        if loaded:
            console.print(loaded)
    for parameter in model.frozen_parameters():
        parameter.requires_grad_(False)
    return model


def _setup(config: TrainConfig, resume: bool, console: Console) -> _Run:
    """Everything a run needs before its first step: checkpoint, data, validation set, model,
    optimiser and weight average (restored from the checkpoint when resuming)."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = _read_checkpoint(config, out, resume, console)
    try:
        device = resolve_device(config.device)
    except VidcolorError as error:
        raise SystemExit(f"vidcolor train: {error}") from None
    torch.manual_seed(config.seed)
    image_set, probabilities = _load_training_images(config, console)
    images = image_set.images.to(device)
    val_images, judgement = _validation_set(config, console)
    initial = _initial_weights(config, console) if checkpoint is None else None
    bins, weights, histogram = _colour_statistics(config, images, initial, checkpoint)
    model = _network(config, bins, initial, checkpoint is None, console)
    model = model.to(device, memory_format=torch.channels_last)  # 10-25 % faster steps on the CPU, measured
    optimizer = build_optimizer(model, config)
    run = _Run(
        config,
        console,
        out,
        device,
        images,
        probabilities,
        len(image_set.paths),
        bins,
        weights,
        histogram,
        model,
        optimizer,
        weight_average(model, config.ema),
        val_images,
        judgement,
    )
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"], strict=False)
        optimizer.load_state_dict(checkpoint["optimizer"])
        if run.averaged is not None and checkpoint.get("ema") is not None:
            run.averaged.load_state_dict(checkpoint["ema"])
        run.step = int(checkpoint["step"])
        run.best = checkpoint.get("best", run.best)
        run.best.setdefault("psnr", -math.inf)
    return run


def _validation_set(config: TrainConfig, console: Console) -> tuple[torch.Tensor | None, SetJudgement | None]:
    """The validation photos ``(N, 3, S, S)`` uint8 (None: no validation) and the perceptual
    judge (None when its weights are not installed)."""
    paths = _validation_paths(config)
    if not paths:
        return None, None
    val_set = load_image_set(paths, config.val_size, config.workers)
    console.print(f"{len(val_set.paths)} validation images at {config.val_size} px")
    try:
        return val_set.images, SetJudgement(load_judge())
    except VidcolorError:
        console.print("note: validation without perceptual figures: pip install 'vidcolor[train]'", markup=False)
        return val_set.images, None


def _step_loop(run: _Run) -> None:
    """Optimiser steps until the step count or the time budget ends; logs, checkpoints and
    validates on the way."""
    config, console, device = run.config, run.console, run.device
    generator = torch.Generator().manual_seed(config.seed + run.step)
    teacher = load_teacher(config, run.model, device)
    if teacher is not None:
        console.print(f"learning the colour distributions of {config.teacher}")
    parts = StepParts(
        run.model,
        run.optimizer,
        run.averaged,
        run.bins,
        run.weights,
        config.degrade,
        teacher=teacher,
        low_colour=config.low_colour,
        consistency=config.consistency,
        consistency_free=config.consistency_free,
    )
    total, validate_every = run.total, config.val_every or run.per_epoch
    console.print(
        f"training {config.arch}, {sum(p.numel() for p in run.model.parameters()) / 1e6:.2f} M parameters on "
        f"{device} ({config.loss}, {len(run.bins) if run.bins is not None else 2} outputs), steps {run.step} -> {total}"
    )
    run.started = time.monotonic()
    deadline = run.started + config.max_minutes * 60 if config.max_minutes else None
    run.model.train()
    window = _LossWindow(device)
    with _progress(console) as progress:
        task = progress.add_task("training", total=total, completed=run.step, info="")
        while run.step < total:
            index = torch.multinomial(run.probabilities, config.batch_size, replacement=True, generator=generator)
            crop = config.crop_size(max(run.time_fraction(), run.step / total))  # by steps or time, the further
            learning_rate = _learning_rate(config, run.step, total, run.time_fraction())
            loss = training_step(parts, run.images[index.to(device)], crop, learning_rate, generator)
            run.step += 1
            window.add(loss, len(index))
            if run.step % 10 == 0:
                info = window.report(run.step, total, crop, console)
                progress.update(task, completed=run.step, info=info)
            out_of_time = deadline is not None and time.monotonic() > deadline
            if run.step % config.checkpoint_every == 0:
                _save_checkpoint(run)
            if run.val_images is not None and (run.step % validate_every == 0 or run.step == total or out_of_time):
                _validation_round(run)
            if out_of_time:
                console.print(f"time limit of {config.max_minutes} minutes reached at step {run.step}")
                break


class _LossWindow:
    """The mean loss and the images per second over the last 10 steps."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._reset()

    def _reset(self) -> None:
        self.loss, self.images, self.start = torch.zeros((), device=self.device), 0, time.perf_counter()

    def add(self, loss: torch.Tensor, images: int) -> None:
        self.loss += loss
        self.images += images

    def report(self, step: int, total: int, crop: int, console: Console) -> str:
        """The progress bar's text (in a log, a line every 200 steps too); starts a new window."""
        mean_loss, rate = float(self.loss) / 10, self.images / (time.perf_counter() - self.start)
        if not console.is_terminal and step % 200 == 0:
            console.print(f"step {step}/{total} loss {mean_loss:.4f} {rate:.1f} img/s at {crop} px")
        self._reset()
        return f"loss {mean_loss:.3f} {rate:.1f} img/s"


def _validation_round(run: _Run) -> None:
    """Validate the shipped network, log it, keep a snapshot, export it when it is the best so
    far (:func:`_better`), and checkpoint."""
    network = run.shipped
    network.eval()
    result = _validate(network, run.val_images, run.device, run.config.val_size, run.judgement)
    network.train()
    run.model.train()
    scores, grey = result["model"], result["grey"]
    perceptual = (
        f" Frechet {scores['frechet']:.2f} (grey {grey['frechet']:.2f}) agreement "
        f"{scores['agreement']:.3f} (grey {grey['agreement']:.3f})"
        if "frechet" in scores
        else ""
    )
    run.console.print(
        f"step {run.step} epoch {run.step / run.per_epoch:.1f}: val PSNR {scores['psnr']:.2f} "
        f"(grey {grey['psnr']:.2f}) AuC {scores['auc']:.4f} (grey {grey['auc']:.4f}) "
        f"colourfulness {scores['colourfulness']:.1f} (truth {scores['true_colourfulness']:.1f})" + perceptual,
        markup=False,
    )
    network.eval()
    # every validated state is kept, so that a trade-off other than the best PSNR can be chosen later
    (run.out / SNAPSHOTS).mkdir(exist_ok=True)
    _export(run, result, run.out / SNAPSHOTS / f"step-{run.step:07d}.safetensors")
    if _better(scores, run.best):
        run.best = {"psnr": scores["psnr"], "metrics": result, "step": run.step}
        if "frechet" in scores:
            run.best["frechet"] = scores["frechet"]
        _export(run, result)
        run.console.print(f"exported {run.out / MODEL_NAME} (best so far)")
    network.train()
    _save_checkpoint(run)


def _save_checkpoint(run: _Run) -> None:
    _atomic_save(
        {
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "ema": run.averaged.state_dict() if run.averaged is not None else None,
            "step": run.step,
            "config": asdict(run.config),
            "bins": run.bins,
            "weights": run.weights,
            "histogram": run.histogram,
            "best": run.best,
        },
        run.out / CHECKPOINT_NAME,
    )


def _export(run: _Run, metrics: dict | None, path: Path | None = None) -> None:
    """The shipped network and its model card into ``path`` (default ``OUT/model.safetensors``)."""
    config, network = run.config, run.shipped
    path = path or run.out / MODEL_NAME
    card = {
        "architecture": config.arch,
        "net": network.config.to_dict(),
        "parameters": sum(p.numel() for p in network.parameters()),
        "bins": {
            "kind": config.bins if config.loss == "classification" else None,
            "count": len(run.bins) if run.bins is not None else 0,
        },
        "loss": config.loss,
        "teacher": config.teacher,
        "rebalance_lambda": config.rebalance_lambda,
        "low_colour": config.low_colour,
        "consistency": config.consistency,
        "consistency_free": config.consistency_free,
        "default_decoding": {"method": VALIDATION_DECODING.method, "temperature": VALIDATION_DECODING.temperature},
        "data": {
            "train": config.data,
            "train_images": run.train_images,
            "hold_out": config.hold_out,
            "val": config.val,
        },
        "command": config.command,
        "steps": run.step,
        "epochs": round(run.step / run.per_epoch, 2),
        "batch_size": config.batch_size,
        "crop_size": config.size,
        "crop_schedule": config.size_schedule,
        "lr": config.lr,
        "encoder_lr": config.encoder_lr,
        "ema": config.ema,
        "validation_at_256px": metrics,
    }
    save_model(network, path, extra={"card": card})
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
