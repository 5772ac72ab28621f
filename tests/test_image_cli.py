"""End-to-end tests of still-image mode through the real ``vidcolor`` command line."""

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from skimage import color as skcolor

from tests.conftest import run_cli, smooth_colour_image
from vidcolor.image import read_image
from vidcolor.models import VidNetConfig, build_model, save_model


def lightness(rgb: np.ndarray) -> np.ndarray:
    return skcolor.rgb2lab(rgb)[..., 0]


def test_photo_written_beside_input_with_full_resolution_and_its_lightness(tmp_path):
    grey = cv2.cvtColor(smooth_colour_image(123, 157), cv2.COLOR_RGB2GRAY)
    Image.fromarray(grey).save(tmp_path / "photo.png")
    result = run_cli(str(tmp_path / "photo.png"))
    assert result.returncode == 0, result.stderr
    out = np.asarray(Image.open(tmp_path / "photo_color.png").convert("RGB")) / 255.0
    assert out.shape == (123, 157, 3)
    source_l = lightness(np.repeat((grey / 255.0)[..., None], 3, axis=2))
    unclipped = (out > 0.01).all(axis=2) & (out < 0.99).all(axis=2)
    assert np.abs(lightness(out) - source_l)[unclipped].max() < 1.0
    # the colorization actually adds colour
    assert np.abs(skcolor.rgb2lab(out)[..., 1:]).mean() > 1.0
    assert "colorized 1 of 1" in result.stderr


def write_formats(folder: Path) -> dict[str, tuple[int, int]]:
    colour = smooth_colour_image(48, 64)
    sizes = {}
    Image.fromarray(colour).save(folder / "rgb.jpg")
    sizes["rgb"] = (48, 64)
    rgba = np.dstack([colour, np.linspace(0, 255, 64, dtype=np.uint8)[None].repeat(48, 0)])
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    sizes["alpha"] = (48, 64)
    Image.fromarray(colour).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    sizes["palette"] = (48, 64)
    Image.fromarray(colour).save(folder / "tiff.tif")
    Image.fromarray(colour).save(folder / "webp.webp")
    Image.fromarray(colour).save(folder / "bmp.bmp")
    deep_grey = (np.linspace(0, 65535, 64)[None].repeat(48, 0)).astype(np.uint16)
    cv2.imwrite(str(folder / "grey16.png"), deep_grey)
    deep_rgb = (colour.astype(np.uint16) * 257)[..., ::-1]
    cv2.imwrite(str(folder / "rgb16.png"), np.ascontiguousarray(deep_rgb))
    # EXIF orientation 6 (rotate 90 degrees clockwise to display): displayed as 64 x 48
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(colour).save(folder / "rotated.jpg", exif=exif)
    return sizes


def test_every_format_mode_and_a_folder_batch(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    write_formats(source)
    result = run_cli(str(source), "-o", str(out))
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "alpha_color.png",
            "bmp_color.bmp",
            "grey16_color.png",
            "palette_color.png",
            "rgb16_color.png",
            "rgb_color.jpg",
            "rotated_color.jpg",
            "tiff_color.tif",
            "webp_color.webp",
        ]
    )
    alpha = read_image(out / "alpha_color.png")
    assert alpha.alpha is not None
    assert alpha.alpha.dtype == np.uint8 and np.abs(alpha.alpha[0] / 255 - np.linspace(0, 1, 64)).max() < 1 / 255 + 1e-6
    deep = cv2.imread(str(out / "rgb16_color.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (48, 64, 3)
    assert cv2.imread(str(out / "grey16_color.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert Image.open(out / "rotated_color.jpg").size == (48, 64)  # (width, height) after rotation
    for name in names:
        assert read_image(out / name).rgb.shape[:2] in ((48, 64), (64, 48))


def test_rgb_input_is_converted_to_grey_first(tmp_path):
    colour = smooth_colour_image(64, 64)
    Image.fromarray(colour).save(tmp_path / "c.png")
    grey = np.round(lightness(colour / 255.0))
    assert run_cli(str(tmp_path / "c.png"), "-o", str(tmp_path / "o.png")).returncode == 0
    out = np.asarray(Image.open(tmp_path / "o.png")) / 255.0
    unclipped = (out > 0.01).all(axis=2) & (out < 0.99).all(axis=2)
    assert np.abs(lightness(out) - grey)[unclipped].max() < 1.5


def test_bad_inputs_fail_one_line_each_while_the_rest_is_processed(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(smooth_colour_image(32, 32)).save(good)
    (tmp_path / "text.jpg").write_text("hello, not a picture")
    (tmp_path / "empty.png").write_bytes(b"")
    data = (tmp_path / "good.png").read_bytes()
    Image.fromarray(smooth_colour_image(64, 64)).save(tmp_path / "full.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "full.jpg").read_bytes()[:600])
    assert data
    out = tmp_path / "out"
    result = run_cli(
        str(tmp_path / "missing.jpg"),
        str(tmp_path / "text.jpg"),
        str(tmp_path / "empty.png"),
        str(tmp_path / "cut.jpg"),
        str(good),
        "-o",
        str(out),
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 4, result.stderr
    for name, words in [
        ("missing.jpg", "no such file"),
        ("text.jpg", "neither an image"),
        ("empty.png", "empty file"),
        ("cut.jpg", "truncated"),
    ]:
        assert any(name in line and words in line for line in errors), (name, result.stderr)
    assert (out / "good_color.png").exists()
    assert "colorized 1 of 5" in result.stderr


def test_never_overwrites_and_refuses_output_equal_to_input(tmp_path):
    photo = tmp_path / "p.png"
    Image.fromarray(smooth_colour_image(32, 32)).save(photo)
    target = tmp_path / "t.png"
    target.write_bytes(b"keep me")
    result = run_cli(str(photo), "-o", str(target))
    assert result.returncode == 1 and "exists (use --overwrite" in result.stderr
    assert target.read_bytes() == b"keep me"
    assert run_cli(str(photo), "-o", str(target), "--overwrite").returncode == 0
    assert Image.open(target).size == (32, 32)
    same = run_cli(str(photo), "-o", str(photo), "--overwrite")
    assert same.returncode == 1 and "would overwrite the input" in same.stderr


def test_a_folder_colorized_twice_leaves_its_earlier_outputs_alone(tmp_path):
    for name in ("a.png", "b.jpg"):
        Image.fromarray(smooth_colour_image(32, 40)).save(tmp_path / name)
    assert run_cli(str(tmp_path)).returncode == 0
    again = run_cli(str(tmp_path), "--overwrite")
    assert again.returncode == 0, again.stderr
    assert "skipped 2 earlier output(s)" in again.stderr and "colorized 2 of 2" in again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_color.png", "b.jpg", "b_color.jpg"]
    (tmp_path / "._a.png").write_bytes(b"\x00\x05\x16\x07 resource fork")  # a copy's metadata
    hidden = run_cli(str(tmp_path), "--overwrite")
    assert hidden.returncode == 0 and "skipped 1 hidden file(s) (._a.png)" in hidden.stderr, hidden.stderr
    (tmp_path / "._a.png").unlink()
    # named on its own, an earlier output is colorized like any photo
    named = run_cli(str(tmp_path / "a_color.png"))
    assert named.returncode == 0 and (tmp_path / "a_color_color.png").exists()


def test_unwritable_output_folder(tmp_path):
    photo = tmp_path / "p.png"
    Image.fromarray(smooth_colour_image(32, 32)).save(photo)
    if os.geteuid() == 0:
        locked = Path("/proc")  # not writable, even by root
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
    result = run_cli(str(photo), "-o", str(locked / "o.png"))
    assert result.returncode == 1 and "could not write" in result.stderr
    assert len([line for line in result.stderr.splitlines() if "error:" in line]) == 1


def test_missing_output_folder_and_bad_model_are_clear(tmp_path):
    photo = tmp_path / "p.png"
    Image.fromarray(smooth_colour_image(32, 32)).save(photo)
    result = run_cli(str(photo), "-o", str(tmp_path / "nope" / "o.png"))
    assert result.returncode == 1 and "does not exist" in result.stderr
    (tmp_path / "w.pth").write_bytes(b"garbage")
    result = run_cli(str(photo), "--model", str(tmp_path / "w.pth"))
    assert result.returncode == 1 and "w.pth: not a loadable weight file" in result.stderr


def test_mixed_precision_from_the_command_line(tmp_path):
    photo = tmp_path / "p.png"
    Image.fromarray(smooth_colour_image(48, 64)).save(photo)
    mixed, exact = tmp_path / "mixed.png", tmp_path / "f32.png"
    for target, precision in ((mixed, "mixed"), (exact, "f32")):
        result = run_cli(str(photo), "-o", str(target), "--precision", precision, "--device", "cpu")
        assert result.returncode == 0, result.stderr
    difference = np.abs(np.asarray(Image.open(mixed), np.int16) - np.asarray(Image.open(exact), np.int16))
    assert difference.mean() < 1.0  # RGB codes: the same colours to within rounding
    bins = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    small = build_model("vidnet", VidNetConfig(widths=(8, 8, 16, 16), num_bins=3).to_dict(), bins).eval()
    weights = tmp_path / "small.safetensors"
    save_model(small, weights, half=False)
    target = tmp_path / "small.png"
    result = run_cli(str(photo), "-o", str(target), "--model", str(weights), "--precision", "mixed")
    assert result.returncode == 1 and "cannot be cut in two" in result.stderr
    assert not target.exists()


def test_decodings_and_size_options(tmp_path):
    photo = tmp_path / "p.png"
    Image.fromarray(smooth_colour_image(40, 40)).save(photo)
    outputs = {}
    for method in ("mean", "mode"):  # the default, annealed, runs in every other test
        target = tmp_path / f"{method}.png"
        result = run_cli(str(photo), "-o", str(target), "--decode", method, "--size", "128", "--device", "cpu")
        assert result.returncode == 0, result.stderr
        outputs[method] = np.asarray(Image.open(target), dtype=np.float64)
    assert not np.array_equal(outputs["mean"], outputs["mode"])
    bad = run_cli(str(photo), "-o", str(tmp_path / "x.png"), "--size", "100")
    assert bad.returncode == 1 and "multiple of 32" in bad.stderr  # the default lite0-unet


def test_read_image_matches_pillow_for_plain_rgb(tmp_path):
    colour = smooth_colour_image(20, 30)
    Image.fromarray(colour).save(tmp_path / "a.png")
    picture = read_image(tmp_path / "a.png")
    assert picture.bits == 8 and picture.alpha is None
    assert np.array_equal(np.round(picture.rgb * 255).astype(np.uint8), colour)
    assert torch.from_numpy(picture.rgb).dtype == torch.float32


def test_tiled_upsampling_matches_the_whole_image_upsampling():
    from vidcolor.colorizer import upsample_ab
    from vidcolor.film.frames import _upsample_rows

    low = torch.rand(1, 2, 64, 64, generator=torch.Generator().manual_seed(0)) * 200 - 100
    height, width = 1000, 777
    wide = upsample_ab(low, (64, width))
    tiles = [_upsample_rows(wide, slice(top, min(height, top + 137)), height) for top in range(0, height, 137)]
    torch.testing.assert_close(torch.cat(tiles, dim=2), upsample_ab(low, (height, width)), atol=2e-3, rtol=0)
