import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from tests.conftest import smooth_colour_image
from vidcolor.bins import soft_encode
from vidcolor.cli import main
from vidcolor.inputs import find_images, is_held_out
from vidcolor.models import DEFAULT_WEIGHTS, VidNet, load_model
from vidcolor.train.data import degrade_lightness, fade_chroma, load_image_set, random_crops
from vidcolor.train.losses import (
    ab_mse,
    distillation_loss,
    greyness_weight,
    rebalanced_cross_entropy,
    shift_consistency,
)


def test_rebalanced_cross_entropy_hand_value():
    bins = torch.tensor([[0.0, 0.0], [100.0, 0.0]])
    ab = torch.zeros(1, 2, 1, 1)  # exactly on bin 0: the target is one-hot there (bin 1 is far)
    logits = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    weights = torch.tensor([2.0, 0.5])
    expected = 2.0 * -math.log(math.exp(1) / (math.exp(1) + 1))
    assert rebalanced_cross_entropy(logits, ab, bins, weights).item() == pytest.approx(expected, rel=1e-5)
    target = soft_encode(ab, bins)
    assert target[0, :, 0, 0].tolist() == pytest.approx([1.0, 0.0])


def test_ab_mse_scale():
    assert ab_mse(torch.full((1, 2, 2, 2), 11.0), torch.zeros(1, 2, 2, 2)).item() == pytest.approx(0.01)


def test_random_crops_and_degradation_ranges():
    images = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8)
    crops = random_crops(images, 32, torch.Generator().manual_seed(0))
    assert crops.shape == (4, 3, 32, 32) and crops.min() >= 0 and crops.max() <= 1
    # a crop is a window of the source, possibly flipped
    source = images[0].float() / 255
    found = any(
        torch.equal(crops[0], window) or torch.equal(crops[0], window.flip(-1))
        for top in range(9)
        for left in range(9)
        for window in [source[:, top : top + 32, left : left + 32]]
    )
    assert found
    lightness = torch.rand(8, 1, 32, 32) * 100
    degraded = degrade_lightness(lightness, torch.Generator().manual_seed(0))
    assert degraded.shape == lightness.shape and degraded.min() >= 0 and degraded.max() <= 100
    assert not torch.equal(degraded, lightness)


def test_fade_chroma_fades_the_chosen_share_towards_neutral_and_keeps_the_rest():
    ab = torch.full((400, 2, 4, 4), 30.0)
    faded = fade_chroma(ab, 0.25, strongest=0.35, generator=torch.Generator().manual_seed(0))
    scale = faded[:, 0, 0, 0] / 30.0
    kept = torch.isclose(scale, torch.ones(()))
    assert 0.15 < (~kept).float().mean() < 0.35  # about a quarter faded
    assert scale[~kept].max() <= 0.35 and scale[~kept].min() >= 0
    assert torch.equal(faded[:, :1], faded[:, 1:])  # a and b scaled alike: the hue kept
    assert torch.equal(fade_chroma(ab, 0.0), ab)


@pytest.fixture
def image_folders(tmp_path):
    train, val = tmp_path / "train", tmp_path / "val"
    (train / "sub").mkdir(parents=True)
    val.mkdir()
    for i in range(6):
        Image.fromarray(smooth_colour_image(80, 96, seed=i)).save(train / "sub" / f"c{i}.png")
    Image.fromarray(np.full((80, 80, 3), 128, np.uint8)).save(train / "grey.jpg")
    (train / "broken.jpg").write_bytes(b"not an image")
    Image.fromarray(smooth_colour_image(64, 64, seed=9)).save(val / "v.png")
    return train, val


def test_train_starts_from_committed_weights(image_folders, tmp_path):
    train, _ = image_folders
    out = tmp_path / "fine"
    result = CliRunner().invoke(
        main,
        [
            "train",
            str(train),
            "--out",
            str(out),
            "--size",
            "32",
            "--batch-size",
            "4",
            "--steps",
            "1",
            "--lr",
            "1e-9",
            "--device",
            "cpu",
            "--init",
            str(DEFAULT_WEIGHTS),
        ],
    )
    assert result.exit_code == 0, result.output
    tuned, shipped = load_model(out / "model.safetensors"), load_model()
    assert tuned.config == shipped.config and torch.equal(tuned.bins, shipped.bins)
    x = torch.randn(1, 1, 64, 64)
    # one step at a negligible learning rate: still the shipped model (up to fp16 storage and BN statistics)
    assert torch.nn.functional.cosine_similarity(tuned.eval()(x).flatten(), shipped(x).flatten(), dim=0) > 0.99


def test_image_set_skips_grey_and_unreadable(image_folders):
    train, _ = image_folders
    paths = find_images([train])
    image_set = load_image_set(paths, 64)
    assert len(image_set.paths) == 6 and image_set.skipped_grey == 1 and image_set.skipped_unreadable == 1
    assert image_set.images.shape == (6, 3, 64, 64) and image_set.images.dtype == torch.uint8


@pytest.mark.parametrize("loss", ["classification", "regression"])
def test_train_cli_checkpoints_resumes_and_exports(image_folders, tmp_path, loss):
    train, val = image_folders
    out = tmp_path / "run"
    common = [
        str(train),
        "--val",
        str(val),
        "--out",
        str(out),
        "--size",
        "32",
        "--batch-size",
        "4",
        "--arch",
        "vidnet",
        "--widths",
        "8,8,16,16",
        "--checkpoint-every",
        "2",
        "--loss",
        loss,
        "--device",
        "cpu",
    ]
    runner = CliRunner()
    first = runner.invoke(main, ["train", *common, "--steps", "4", "--degrade", "--bins", "data"])
    assert first.exit_code == 0, first.output
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 4
    second = runner.invoke(main, ["train", *common, "--steps", "6", "--resume"])
    assert second.exit_code == 0, second.output
    assert "resuming" in second.output
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 6
    model = load_model(out / "model.safetensors")
    assert isinstance(model, VidNet) and model.kind == loss
    card = json.loads((out / "model.json").read_text())
    assert card["loss"] == loss and card["steps"] in (2, 4, 6) and "psnr" in card["validation_at_256px"]["model"]
    assert card["command"].startswith("vidcolor train")
    # the resumed checkpoint loads as a model too
    assert isinstance(load_model(out / "checkpoint.pt"), VidNet)


def test_data_sources_weights_and_held_out_split(tmp_path):
    from vidcolor.train.data import DataSource, assign_sources, sampling_probabilities

    assert DataSource.parse("some/folder=0.25") == DataSource(Path("some/folder"), 0.25)
    assert DataSource.parse("plain") == DataSource(Path("plain"), None)
    with pytest.raises(ValueError, match="positive"):
        DataSource.parse("a=0")
    with pytest.raises(ValueError, match="number"):
        DataSource.parse("a=many")
    (tmp_path / "all" / "faces").mkdir(parents=True)
    paths = [tmp_path / "all" / f"s{i}.png" for i in range(3)] + [
        tmp_path / "all" / "faces" / f"f{i}.png" for i in range(9)
    ]
    sources = [DataSource(tmp_path / "all", 0.5), DataSource(tmp_path / "all" / "faces", 0.5)]
    owners = assign_sources(paths, sources)
    assert owners == [0] * 3 + [1] * 9  # the deeper folder claims its images
    probabilities = sampling_probabilities(owners, sources)
    assert probabilities[:3].sum().item() == pytest.approx(0.5) and probabilities[0] == probabilities[2]
    assert sampling_probabilities(owners, [DataSource(s.folder) for s in sources]).unique().numel() == 1
    with pytest.raises(ValueError, match="every"):
        sampling_probabilities(owners, [sources[0], DataSource(sources[1].folder)])
    names = [Path(f"d{i}/img{i}.jpg") for i in range(2000)]
    held = [p for p in names if is_held_out(p, 0.1)]
    assert 150 < len(held) < 250  # about a tenth, by name only
    assert all(is_held_out(Path("elsewhere") / p.name, 0.1) for p in held)


def test_find_images_lists_nested_folders_once(image_folders):
    train, _ = image_folders
    assert find_images([train, train / "sub"]) == find_images([train])


def test_train_lite0_unet_exports_the_weight_average_and_continues_from_it(image_folders, tmp_path):
    from vidcolor.models import Lite0UNet

    train, val = image_folders
    out = tmp_path / "lite"
    common = ["--size", "64", "--batch-size", "2", "--device", "cpu", "--val-limit", "1"]
    first = CliRunner().invoke(
        main,
        ["train", f"{train}=1", f"{train / 'sub'}=3", "--val", str(val), "--out", str(out), "--steps", "2", *common],
    )
    assert first.exit_code == 0, first.output
    # the top folder holds no colour image of its own: its share goes to the subfolder
    assert "ImageNet" in first.output and "6 images, 100% of the samples" in first.output
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["ema"] is not None and checkpoint["config"]["arch"] == "lite0-unet"
    exported = load_model(out / "model.safetensors")
    assert isinstance(exported, Lite0UNet)
    assert sorted(p.name for p in (out / "snapshots").glob("*.safetensors")) == ["step-0000002.safetensors"]
    # the exported weights are the average's, not the last step's
    average = {k.removeprefix("module."): v for k, v in checkpoint["ema"].items()}
    key = "head.weight"
    torch.testing.assert_close(exported.state_dict()[key], average[key].half().float())
    second = CliRunner().invoke(
        main,
        [
            "train",
            str(train),
            "--out",
            str(tmp_path / "more"),
            "--steps",
            "1",
            "--init",
            str(out / "model.safetensors"),
            *common,
        ],
    )
    assert second.exit_code == 0, second.output
    assert isinstance(load_model(tmp_path / "more" / "model.safetensors"), Lite0UNet)


def test_distillation_loss_is_the_divergence_from_the_teachers_distribution():
    teacher = torch.tensor([2.0, 0.0, -1.0]).view(1, 3, 1, 1)
    assert distillation_loss(teacher + 5.0, teacher).item() == pytest.approx(0.0, abs=1e-6)  # same distribution
    student = torch.zeros(1, 3, 1, 1)  # uniform
    p = torch.softmax(teacher.flatten(), 0)
    expected = float((p * (p.log() - math.log(1 / 3))).sum())
    assert distillation_loss(student, teacher).item() == pytest.approx(expected, rel=1e-5)
    assert expected > 0.1


def test_train_learns_a_teachers_distributions_and_refuses_other_bins(image_folders, tmp_path):
    train, _ = image_folders
    common = ["--size", "64", "--batch-size", "2", "--device", "cpu", "--steps", "2"]
    result = CliRunner().invoke(
        main,
        ["train", str(train), "--out", str(tmp_path / "student"), "--teacher", str(DEFAULT_WEIGHTS), *common],
    )
    assert result.exit_code == 0, result.output
    assert "learning the colour distributions of" in result.output
    card = json.loads((tmp_path / "student" / "model.json").read_text())
    assert card["teacher"] == str(DEFAULT_WEIGHTS)

    refused = CliRunner().invoke(
        main,
        ["train", str(train), "--out", str(tmp_path / "other"), "--bins", "data", "--arch", "vidnet"]
        + ["--teacher", str(DEFAULT_WEIGHTS), *common],
    )
    assert refused.exit_code != 0
    assert "bins differ" in refused.output


def test_init_with_another_decoder_keeps_the_encoder_and_starts_the_decoder_afresh(image_folders, tmp_path):
    train, _ = image_folders
    out = tmp_path / "student"
    result = CliRunner().invoke(
        main,
        ["train", str(train), "--out", str(out), "--init", str(DEFAULT_WEIGHTS), "--decoder", "separable"]
        + ["--teacher", str(DEFAULT_WEIGHTS), "--size", "64", "--batch-size", "2", "--device", "cpu", "--steps", "1"],
    )
    assert result.exit_code == 0, result.output
    assert "start afresh (e.g. up16.0.weight)" in result.output
    teacher, student = load_model(DEFAULT_WEIGHTS), load_model(out / "model.safetensors")
    assert teacher.config.decoder == "dense" and student.config.decoder == "separable"
    # the stem stays frozen in training: it is still the initial model's, to the file's precision
    torch.testing.assert_close(student.state_dict()["_conv_stem.weight"], teacher.state_dict()["_conv_stem.weight"])
    assert student.state_dict()["up16.0.weight"].shape[-1] == 1 != teacher.state_dict()["up16.0.weight"].shape[-1]
    # without --decoder the initial model's own decoder is kept
    again = CliRunner().invoke(
        main,
        ["train", str(train), "--out", str(tmp_path / "again"), "--init", str(out / "model.safetensors")]
        + ["--size", "64", "--batch-size", "2", "--device", "cpu", "--steps", "1"],
    )
    assert again.exit_code == 0, again.output
    assert load_model(tmp_path / "again" / "model.safetensors").config.decoder == "separable"


def test_train_rejects_a_partial_weighting(image_folders, tmp_path):
    train, _ = image_folders
    result = CliRunner().invoke(
        main, ["train", f"{train}=1", str(train / "sub"), "--out", str(tmp_path / "x"), "--steps", "1", "--size", "64"]
    )
    assert result.exit_code != 0 and "every training folder a weight" in result.output


@pytest.mark.parametrize("damage", ["junk", "half"])
def test_resume_from_a_damaged_checkpoint_is_a_one_line_error(image_folders, tmp_path, damage):
    train, _ = image_folders
    out = tmp_path / "run"
    common = ["train", str(train), "--out", str(out), "--arch", "vidnet", "--size", "32", "--batch-size", "2"]
    assert CliRunner().invoke(main, [*common, "--steps", "1"]).exit_code == 0
    checkpoint = out / "checkpoint.pt"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(os.urandom(4096) if damage == "junk" else data[: len(data) // 2])
    result = CliRunner().invoke(main, [*common, "--steps", "2", "--resume"])
    assert result.exit_code not in (0, None) and not isinstance(result.exception, (IndexError, RuntimeError))
    assert "not a readable checkpoint" in str(result.exception) and str(checkpoint) in str(result.exception)


def test_a_folder_of_grey_photos_is_named_in_the_error(tmp_path):
    grey = tmp_path / "greys"
    grey.mkdir()
    for i in range(2):
        Image.fromarray(np.full((64, 64, 3), 90 + i, np.uint8)).save(grey / f"g{i}.png")
    result = CliRunner().invoke(
        main, ["train", str(grey), "--out", str(tmp_path / "o"), "--size", "32", "--steps", "1"]
    )
    assert result.exit_code not in (0, None)
    assert str(grey) in str(result.exception) and "2 near-grey" in str(result.exception)


def test_training_reads_photos_as_colorizing_does(tmp_path):
    """EXIF orientation applied and 16-bit files read at full precision, as in still-image mode."""
    from vidcolor.train.data import load_square

    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, :40] = (200, 30, 30)  # left half red, right half blue
    wide[:, 40:] = (30, 30, 200)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: the red half on top
    Image.fromarray(wide).save(tmp_path / "turned.png", exif=exif)
    square = load_square(tmp_path / "turned.png", 32)
    assert square.shape == (32, 32, 3)
    assert square[2, 16, 0] > 150 and square[-3, 16, 2] > 150  # red at the top, blue at the bottom

    deep = np.empty((48, 48, 3), np.uint16)
    deep[...] = (50000, 12000, 30000)  # OpenCV order: blue, green, red
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    square = load_square(tmp_path / "deep.png", 32)
    assert np.abs(square[16, 16].astype(int) - np.round(np.array([30000, 12000, 50000]) / 65535 * 255)).max() <= 1
    assert load_square(tmp_path / "missing.png", 32) is None


def test_crop_size_schedule_takes_equal_parts_of_the_run():
    from vidcolor.train.config import TrainConfig

    config = TrainConfig(data=[], size=192, size_schedule=[128, 160, 192])
    assert [config.crop_size(p) for p in (0.0, 0.2, 0.34, 0.66, 0.67, 0.99, 1.0)] == [128, 128, 160, 160, 192, 192, 192]
    assert config.cache_size == 240  # room for the largest crop
    assert TrainConfig(data=[], size=96).crop_size(0.5) == 96


def test_train_cli_size_schedule_is_recorded_and_checked(image_folders, tmp_path):
    train, _ = image_folders
    out = tmp_path / "run"
    common = ["train", str(train), "--out", str(out), "--arch", "vidnet", "--batch-size", "2", "--device", "cpu"]
    result = CliRunner().invoke(main, [*common, "--size", "32,64", "--steps", "2"])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "model.json").read_text())
    assert card["crop_size"] == 64 and card["crop_schedule"] == [32, 64]
    for bad in ("48", "32,x", "0"):
        result = CliRunner().invoke(main, [*common, "--size", bad, "--steps", "1"])
        assert result.exit_code == 2 and "--size" in result.output


@pytest.mark.parametrize("channels_last", [True, False])
def test_training_step_updates_the_weights_and_their_average(channels_last):
    from vidcolor.bins import gamut_bins
    from vidcolor.models import build_model
    from vidcolor.train.config import TrainConfig
    from vidcolor.train.loop import build_optimizer, weight_average
    from vidcolor.train.step import StepParts, training_step

    torch.manual_seed(0)
    bins = gamut_bins()
    model = build_model("vidnet", {"widths": [8, 8, 8, 8], "num_bins": len(bins)}, bins)
    parts = StepParts(
        model,
        build_optimizer(model, TrainConfig(data=[])),
        weight_average(model, 0.9),
        bins,
        torch.ones(len(bins)),
        channels_last=channels_last,
    )
    before = [p.detach().clone() for p in model.parameters()]
    images = torch.from_numpy(np.stack([smooth_colour_image(40, 40, seed=i) for i in range(2)])).permute(0, 3, 1, 2)
    generator = torch.Generator().manual_seed(0)
    losses = [training_step(parts, images, 32, 1e-2, generator) for _ in range(3)]
    assert all(torch.isfinite(loss) and not loss.requires_grad for loss in losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert int(parts.averaged.n_averaged) == 3
    assert parts.optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * parts.optimizer.param_groups[0]["lr_scale"])


def test_validation_adds_the_held_out_files_and_the_perceptual_figures(image_folders, tmp_path):
    from vidcolor.inputs import find_images, is_held_out

    train, val = image_folders
    held = [p for p in find_images([train]) if is_held_out(p, 0.3)]
    out = tmp_path / "run"
    args = ["train", str(train), "--val", str(val), "--val-held-out", "--hold-out", "0.3", "--out", str(out)]
    args += ["--size", "32", "--batch-size", "4", "--arch", "vidnet", "--widths", "8,8,16,16", "--steps", "2"]
    result = CliRunner().invoke(main, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    expected = len(find_images([val])) + len(held)
    assert held and f"{expected} validation images" in result.output
    assert "Frechet" in result.output
    scores = json.loads((out / "model.json").read_text())["validation_at_256px"]
    assert {"frechet", "agreement"} <= set(scores["model"]) and {"frechet", "agreement"} <= set(scores["grey"])


def test_a_bf16_training_step_runs_on_the_cpu_and_updates_the_weights():
    from vidcolor.bins import gamut_bins
    from vidcolor.models import build_model
    from vidcolor.train.config import TrainConfig
    from vidcolor.train.loop import build_optimizer
    from vidcolor.train.step import StepParts, training_step

    torch.manual_seed(0)
    bins = gamut_bins()
    model = build_model("vidnet", {"widths": [8, 8, 8, 8], "num_bins": len(bins)}, bins)
    parts = StepParts(model, build_optimizer(model, TrainConfig(data=[])), None, bins, torch.ones(len(bins)))
    parts.precision = "bf16"
    before = [p.detach().clone() for p in model.parameters()]
    images = torch.from_numpy(np.stack([smooth_colour_image(40, 40, seed=i) for i in range(2)])).permute(0, 3, 1, 2)
    loss = training_step(parts, images, 32, 1e-2, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_shift_consistency_is_zero_for_colours_that_move_with_the_content_and_grows_otherwise():
    """Outputs that are the same map moved by the shift (in whole and half cells) score 0; the same
    map unmoved, or another map, scores more."""
    generator = torch.Generator().manual_seed(0)
    field = torch.randn(2, 5, 20, 24, generator=generator)  # logits over 5 bins on a 20x24 output grid
    stride = 4
    assert shift_consistency(field, field, (0, 0), stride).item() == pytest.approx(0.0, abs=1e-6)
    # the second view shows the first's content (y + 8, x - 4) px: its cell (i, j) is the first's (i + 2, j - 1)
    moved = torch.roll(field, shifts=(-2, 1), dims=(2, 3))
    assert shift_consistency(field, moved, (8, -4), stride).item() == pytest.approx(0.0, abs=1e-6)
    assert shift_consistency(field, moved, (0, 0), stride).item() > 0.1
    assert shift_consistency(field, torch.randn(2, 5, 20, 24, generator=generator), (8, -4), stride).item() > 0.1
    # half a cell: the first view's probabilities read halfway between two cells
    probs = torch.softmax(field, dim=1)
    halfway = 0.5 * (probs + torch.roll(probs, shifts=-1, dims=3))
    assert shift_consistency(field, halfway.log(), (0, 2), stride).item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="no shared cells"):
        shift_consistency(field, field, (0, 90), stride)


def test_greyness_weight_holds_grey_cells_and_frees_coloured_ones_in_the_consistency_term():
    """The weight is 1 at grey, falls linearly with chroma and is 0 from ``free_chroma`` on; the
    weighted term counts the disagreement only where the weight is."""
    ab = torch.tensor([[0.0, 3.0, 6.0, 30.0], [0.0, 4.0, 8.0, 0.0]]).reshape(1, 2, 1, 4)
    assert greyness_weight(ab, 20.0)[0, 0].tolist() == pytest.approx([1.0, 0.75, 0.5, 0.0])
    with pytest.raises(ValueError, match="free_chroma"):
        greyness_weight(ab, 0.0)
    generator = torch.Generator().manual_seed(1)
    field, other = torch.randn(2, 1, 5, 12, 12, generator=generator)
    uniform = shift_consistency(field, other, (0, 0), 4)
    everywhere = shift_consistency(field, other, (0, 0), 4, torch.ones(1, 12, 12))
    assert everywhere.item() == pytest.approx(uniform.item())
    assert shift_consistency(field, other, (0, 0), 4, torch.zeros(1, 12, 12)).item() == 0.0
    left_half = torch.zeros(1, 12, 12)
    left_half[..., :6] = 1
    half = shift_consistency(field, other, (0, 0), 4, left_half).item()
    assert 0 < half < uniform.item()


def test_a_training_step_with_the_consistency_term_sees_two_views_and_trains():
    from vidcolor.bins import gamut_bins
    from vidcolor.models import build_model
    from vidcolor.train.config import TrainConfig
    from vidcolor.train.loop import build_optimizer
    from vidcolor.train.step import StepParts, training_step

    torch.manual_seed(0)
    bins = gamut_bins()
    model = build_model("vidnet", {"widths": [8, 8, 8, 8], "num_bins": len(bins)}, bins)
    images = torch.from_numpy(np.stack([smooth_colour_image(56, 56, seed=i) for i in range(2)])).permute(0, 3, 1, 2)
    batches = []
    losses = {}
    for weight, free in ((0.0, 0.0), (1.0, 0.0), (1.0, 20.0)):
        torch.manual_seed(0)
        fresh = build_model("vidnet", {"widths": [8, 8, 8, 8], "num_bins": len(bins)}, bins)
        fresh.load_state_dict(model.state_dict())
        fresh.register_forward_hook(lambda module, inputs, output: batches.append(len(inputs[0])))
        parts = StepParts(fresh, build_optimizer(fresh, TrainConfig(data=[])), None, bins, torch.ones(len(bins)))
        parts.consistency, parts.consistency_free = weight, free
        before = [p.detach().clone() for p in fresh.parameters()]
        losses[weight, free] = training_step(parts, images, 32, 1e-2, torch.Generator().manual_seed(3))
        assert torch.isfinite(losses[weight, free])
        assert any(not torch.equal(a, b) for a, b in zip(before, fresh.parameters(), strict=True))
    assert batches == [2, 4, 4]  # the second view goes through the network beside the first
    # the same views, the term counted only where the targets are near grey: a smaller loss
    assert losses[1.0, 20.0] < losses[1.0, 0.0]
    with pytest.raises(ValueError, match="needs images of 48 px"):
        training_step(parts, images[..., :40, :40], 32, 1e-2, torch.Generator().manual_seed(3))


def test_train_cli_records_the_consistency_weight_and_refuses_it_for_regression(image_folders, tmp_path):
    train, val = image_folders
    out = tmp_path / "run"
    args = ["train", str(train), "--out", str(out), "--size", "32", "--batch-size", "4", "--arch", "vidnet"]
    args += ["--widths", "8,8,16,16", "--steps", "2", "--device", "cpu"]
    result = CliRunner().invoke(main, [*args, "--consistency", "0.5", "--consistency-free", "20"])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "model.json").read_text())
    assert card["consistency"] == 0.5 and card["consistency_free"] == 20
    alone = CliRunner().invoke(main, [*args, "--consistency-free", "20"])
    assert alone.exit_code != 0 and "--consistency-free" in alone.output
    refused = CliRunner().invoke(main, [*args, "--consistency", "0.5", "--loss", "regression"])
    assert refused.exit_code != 0 and "--consistency" in refused.output
