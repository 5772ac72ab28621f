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
from dataclasses import asdict
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vidcolor.bins import GRID_SIZE, ab_histogram, data_bins, empirical_prior, gamut_bins, rebalance_weights
from vidcolor.color import rgb_to_lab
from vidcolor.colorizer import Colorizer
from vidcolor.decoding import DecodeSettings
from vidcolor.errors import VidcolorError
from vidcolor.evaluation import evaluate_photos
from vidcolor.inputs import find_images, is_held_out
from vidcolor.models import TRAINABLE, ColorNet, build_model, load_model, save_model
from vidcolor.models.lite0_unet import Lite0UNet, load_imagenet_encoder
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
    colorizer = Colorizer(model, device=device, size=size, decode=VALIDATION_DECODING)
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
    """AdamW; a pretrained encoder gets its own (lower) learning rate, as ``lr_scale`` of ``lr``."""
    if isinstance(model, Lite0UNet):
        encoder_lr = config.encoder_lr if config.encoder_lr is not None else config.lr / 5
        groups = [
            {"params": model.encoder_parameters(), "lr_scale": encoder_lr / config.lr},
            {"params": model.decoder_parameters(), "lr_scale": 1.0},
        ]
    else:
        groups = [{"params": list(model.parameters()), "lr_scale": 1.0}]
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def weight_average(model: ColorNet, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of ``model``'s weights and batch-norm statistics (None when ``decay`` is 0)."""
    if decay <= 0:
        return None
    return torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True
    )


def train(config: TrainConfig, resume: bool = False, console: Console | None = None) -> Path:
    """Train a colorization network; returns the path of the exported safetensors file."""
    console = console or Console(stderr=True, soft_wrap=True)  # whole lines in logs
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out / CHECKPOINT_NAME
    checkpoint = None
    if resume and checkpoint_path.exists():
        try:
            checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
            saved = checkpoint["config"]
        except Exception as error:  # noqa: BLE001 - torch's unpickler fails on damaged files in many ways
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise SystemExit(
                f"vidcolor train: {checkpoint_path}: not a readable checkpoint ({first_line}); "
                "remove it or start without --resume"
            ) from None
        # the data, bins and network come from the checkpoint; the schedule from the command line
        for key in ("loss", "bins", "size", "net", "rebalance_lambda", "arch"):
            setattr(config, key, saved.get(key, "vidnet" if key == "arch" else None))
        config.size_schedule = saved.get("size_schedule", [])
        console.print(f"resuming from {checkpoint_path} at step {checkpoint['step']}")
    elif resume:
        console.print(f"no checkpoint in {out}; starting afresh")

    device = torch.device(
        "cuda"
        if config.device == "auto" and torch.cuda.is_available()
        else ("cpu" if config.device == "auto" else config.device)
    )
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed + (checkpoint["step"] if checkpoint else 0))

    image_set, probabilities = _load_training_images(config, console)
    images = image_set.images.to(device)

    val_images = judgement = None
    val_paths = _validation_paths(config)
    if val_paths:
        val_set = load_image_set(val_paths, config.val_size, config.workers)
        val_images = val_set.images
        console.print(f"{len(val_set.paths)} validation images at {config.val_size} px")
        try:
            judgement = SetJudgement(load_judge())
        except VidcolorError:
            console.print("note: validation without perceptual figures: pip install 'vidcolor[train]'", markup=False)

    initial = _initial_weights(config, console) if checkpoint is None else None
    if checkpoint is not None:
        bins = checkpoint.get("bins")
        weights = checkpoint.get("weights")
        histogram = checkpoint.get("histogram")
    else:
        histogram = torch.zeros(GRID_SIZE, GRID_SIZE, dtype=torch.float64)
        for chunk in images.split(64):
            lab = rgb_to_lab(chunk.float() / 255.0)
            histogram += ab_histogram(torch.nn.functional.avg_pool2d(lab[:, 1:], 4))
        bins = weights = None
        if config.loss == "classification":
            if initial is not None:
                bins = initial.bins.cpu()
            else:
                bins = gamut_bins() if config.bins == "gamut" else data_bins(histogram)
            weights = rebalance_weights(empirical_prior(histogram, bins), config.rebalance_lambda)
    if config.arch not in TRAINABLE:
        raise SystemExit(f"vidcolor train: unknown architecture {config.arch!r}; choose from {', '.join(TRAINABLE)}")
    net_config = {**config.net, "kind": config.loss}
    if config.loss == "classification":
        net_config["num_bins"] = len(bins)
    model = build_model(config.arch, net_config, bins)
    config.net = model.config.to_dict()
    if initial is not None:
        fitting, fresh = matching_state(model, initial)
        model.load_state_dict(fitting, strict=False)
        if fresh:
            console.print(f"{len(fresh)} tensors not in {config.init}'s shape start afresh (e.g. {fresh[0]})")
    elif checkpoint is None and isinstance(model, Lite0UNet):
        try:
            load_imagenet_encoder(model)
        except VidcolorError as error:
            raise SystemExit(f"vidcolor train: {error}") from None
        console.print("encoder initialised from EfficientNet-Lite0's ImageNet weights")
    if isinstance(model, Lite0UNet):
        for parameter in model.frozen_parameters():
            parameter.requires_grad_(False)
    model = model.to(device, memory_format=torch.channels_last)  # 10-25 % faster steps on the CPU, measured
    optimizer = build_optimizer(model, config)
    averaged = weight_average(model, config.ema)
    step = 0
    best = {"psnr": -math.inf, "metrics": None}
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"], strict=False)
        optimizer.load_state_dict(checkpoint["optimizer"])
        if averaged is not None and checkpoint.get("ema") is not None:
            averaged.load_state_dict(checkpoint["ema"])
        step = int(checkpoint["step"])
        best = checkpoint.get("best", best)
        best.setdefault("psnr", -math.inf)

    def shipped() -> ColorNet:
        """The network that is validated and exported: the weight average when there is one."""
        return averaged.module if averaged is not None else model

    per_epoch = steps_per_epoch(len(images), config.batch_size)
    validate_every = config.val_every or per_epoch
    total = config.steps or (config.epochs or 1) * per_epoch
    console.print(
        f"training {config.arch}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters on {device} "
        f"({config.loss}, {len(bins) if bins is not None else 2} outputs), steps {step} -> {total}"
    )
    started = time.monotonic()
    deadline = started + config.max_minutes * 60 if config.max_minutes else None

    def time_fraction() -> float:
        return (time.monotonic() - started) / (config.max_minutes * 60) if config.max_minutes else 0.0

    def save_checkpoint() -> None:
        _atomic_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "ema": averaged.state_dict() if averaged is not None else None,
                "step": step,
                "config": asdict(config),
                "bins": bins,
                "weights": weights,
                "histogram": histogram,
                "best": best,
            },
            checkpoint_path,
        )

    def export(metrics: dict | None, epoch: float, path: Path = out / MODEL_NAME) -> None:
        network = shipped()
        card = {
            "architecture": config.arch,
            "net": network.config.to_dict(),
            "parameters": sum(p.numel() for p in network.parameters()),
            "bins": {
                "kind": config.bins if config.loss == "classification" else None,
                "count": len(bins) if bins is not None else 0,
            },
            "loss": config.loss,
            "teacher": config.teacher,
            "rebalance_lambda": config.rebalance_lambda,
            "default_decoding": {"method": VALIDATION_DECODING.method, "temperature": VALIDATION_DECODING.temperature},
            "data": {
                "train": config.data,
                "train_images": len(image_set.paths),
                "hold_out": config.hold_out,
                "val": config.val,
            },
            "command": config.command,
            "steps": step,
            "epochs": round(epoch, 2),
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

    teacher = load_teacher(config, model, device)
    if teacher is not None:
        console.print(f"learning the colour distributions of {config.teacher}")
    parts = StepParts(model, optimizer, averaged, bins, weights, config.degrade, teacher=teacher)
    model.train()
    window_loss, window_images, window_start = torch.zeros((), device=device), 0, time.perf_counter()
    with _progress(console) as progress:
        task = progress.add_task("training", total=total, completed=step, info="")
        while step < total:
            index = torch.multinomial(probabilities, config.batch_size, replacement=True, generator=generator)
            crop = config.crop_size(max(time_fraction(), step / total))  # by steps or time, whichever is further
            learning_rate = _learning_rate(config, step, total, time_fraction())
            loss = training_step(parts, images[index.to(device)], crop, learning_rate, generator)
            step += 1
            window_loss += loss
            window_images += len(index)
            if step % 10 == 0:
                elapsed = time.perf_counter() - window_start
                mean_loss = float(window_loss) / 10
                rate = window_images / elapsed
                progress.update(task, completed=step, info=f"loss {mean_loss:.3f} {rate:.1f} img/s")
                if not console.is_terminal and step % 200 == 0:
                    console.print(f"step {step}/{total} loss {mean_loss:.4f} {rate:.1f} img/s at {crop} px")
                window_loss, window_images, window_start = torch.zeros((), device=device), 0, time.perf_counter()
            out_of_time = deadline is not None and time.monotonic() > deadline
            if step % config.checkpoint_every == 0:
                save_checkpoint()
            if val_images is not None and (step % validate_every == 0 or step == total or out_of_time):
                network = shipped()
                network.eval()
                result = _validate(network, val_images, device, config.val_size, judgement)
                network.train()
                model.train()
                scores = result["model"]
                console.print(
                    f"step {step} epoch {step / per_epoch:.1f}: val PSNR {scores['psnr']:.2f} "
                    f"(grey {result['grey']['psnr']:.2f}) AuC {scores['auc']:.4f} (grey {result['grey']['auc']:.4f}) "
                    f"colourfulness {scores['colourfulness']:.1f} (truth {scores['true_colourfulness']:.1f})"
                    + (
                        f" Frechet {scores['frechet']:.2f} (grey {result['grey']['frechet']:.2f}) agreement "
                        f"{scores['agreement']:.3f} (grey {result['grey']['agreement']:.3f})"
                        if "frechet" in scores
                        else ""
                    ),
                    markup=False,
                )
                network.eval()
                # every validated state is kept, so that a trade-off other than the best PSNR can be chosen later
                (out / SNAPSHOTS).mkdir(exist_ok=True)
                export(result, step / per_epoch, out / SNAPSHOTS / f"step-{step:07d}.safetensors")
                if _better(scores, best):
                    best = {"psnr": scores["psnr"], "metrics": result, "step": step}
                    if "frechet" in scores:
                        best["frechet"] = scores["frechet"]
                    export(result, step / per_epoch)
                    console.print(f"exported {out / MODEL_NAME} (best so far)")
                network.train()
                save_checkpoint()
            if out_of_time:
                console.print(f"time limit of {config.max_minutes} minutes reached at step {step}")
                break
    save_checkpoint()
    if val_images is None:
        shipped().eval()
        export(None, step / per_epoch)
    console.print(f"done: step {step}, checkpoint {checkpoint_path}, model {out / MODEL_NAME}")
    return out / MODEL_NAME
