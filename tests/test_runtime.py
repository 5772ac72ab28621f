"""Inference runtimes: the same colours as PyTorch, the export cache, the runtime choice."""

from __future__ import annotations

import av
import pytest
import torch
from torch.nn import functional

from tests.conftest import SHARED
from tests.test_models import ECCV16_KEYS, SIGGRAPH17_KEYS, fake_release
from vidcolor.color import normalize_lightness, rgb_to_lab
from vidcolor.colorizer import Colorizer, ColorizerSpec, network_shape
from vidcolor.errors import VidcolorError
from vidcolor.evaluation import load_rgb
from vidcolor.inputs import find_images
from vidcolor.models import VidNet, VidNetConfig, load_model
from vidcolor.runtime import (
    ExportCache,
    OutputArrays,
    cpu_has_bf16,
    export_key,
    installed,
    make_runner,
    resolve_precision,
    resolve_runtime,
)

EXPORTED = [r for r in ("openvino", "onnxruntime") if installed(r)]
CPU = torch.device("cpu")


def shared_lightness() -> list[torch.Tensor]:
    """L of four validation photos, ``(4, 1, 256, 256)``, and of four frames of a shared colour
    clip at their own size, ``(4, 1, 240, 432)`` (the network sees them as 192 x 352)."""
    photos = [load_rgb(p) for p in find_images([SHARED / "data" / "val"])[:4]]
    with av.open(str(SHARED / "data" / "video" / "davis-tennis.mp4")) as container:
        frames = [
            torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1).float() / 255
            for f in container.decode(video=0)
        ]
    resized = [
        torch.nn.functional.interpolate(i[None], size=(256, 256), mode="bilinear", antialias=True) for i in photos
    ]
    clip = torch.stack(frames[:: max(1, len(frames) // 4)][:4])
    return [rgb_to_lab(torch.cat(resized))[:, :1], rgb_to_lab(clip)[:, :1]]


# (runtime, precision) pairs that must give PyTorch f32's colours: every exported runtime in
# f32, and mixed precision (the CPU default where bf16 is native) in OpenVINO and in PyTorch
FAITHFUL = [(r, "f32") for r in EXPORTED] + [("torch", "mixed")] + ([("openvino", "mixed")] if cpu_has_bf16() else [])


@pytest.mark.skipif(not (SHARED / "data" / "val").exists(), reason="needs ../shared/data")
@pytest.mark.parametrize(("runtime", "precision"), FAITHFUL)
def test_every_runtime_gives_torchs_colours_on_shared_photos_and_clip(runtime, precision):
    torch_colorizer = ColorizerSpec("default", 256, "cpu", None, None, runtime="torch", precision="f32").build()
    colorizer = ColorizerSpec("default", 256, "cpu", None, None, runtime=runtime, precision=precision).build()
    assert colorizer.precision == precision
    for lightness in shared_lightness():
        reference = torch_colorizer.ab_lowres(lightness)
        other = colorizer.ab_lowres(lightness)
        assert other.shape == reference.shape
        assert (other - reference).abs().mean() < 0.5  # Lab units
        assert (other - reference).abs().mean(dim=(1, 2, 3)).max() < 0.5  # on every image


@pytest.mark.skipif(not (SHARED / "data" / "val").exists(), reason="needs ../shared/data")
@pytest.mark.skipif(not cpu_has_bf16(), reason="needs a CPU with native bf16 and OpenVINO")
def test_openvino_in_bf16_computes_in_bf16_and_keeps_the_colours_close():
    reference_colorizer = ColorizerSpec("default", 256, "cpu", None, None, runtime="torch", precision="f32").build()
    colorizer = ColorizerSpec("default", 256, "cpu", None, None, runtime="openvino", precision="bf16").build()
    mixed = ColorizerSpec("default", 256, "cpu", None, None, runtime="openvino", precision="mixed").build()
    default = ColorizerSpec("default", 256, "cpu", None, None, runtime="openvino").build()
    assert default.precision == "mixed" and colorizer.precision == "bf16"
    # a film is never resumed in another precision
    assert len({default.fingerprint(), colorizer.fingerprint(), reference_colorizer.fingerprint()}) == 3
    for lightness in shared_lightness():
        reference = reference_colorizer.ab_lowres(lightness)
        difference = (colorizer.ab_lowres(lightness) - reference).abs()
        # Lab units: bf16 arithmetic, not f32's colours to the last bit (0.80 / 1.15 with the default's T = 0.5)
        assert 0.05 < difference.mean() < 1.5
        assert difference.mean(dim=(1, 2, 3)).max() < 2.0  # on every image
        mixed_difference = (mixed.ab_lowres(lightness) - reference).abs().mean()
        assert 0.01 < mixed_difference < difference.mean()  # bf16 in the rest, closer than bf16 throughout


def test_precision_choice():
    assert resolve_precision("auto", "torch", torch.device("cuda")) == "bf16"
    assert resolve_precision("auto", "torch", CPU, halves=True) == "f32"
    assert resolve_precision("auto", "onnxruntime", CPU, halves=True) == "f32"
    assert resolve_precision("bf16", "torch", CPU) == "bf16"
    # on the CPU, auto is mixed where OpenVINO computes bf16 natively and the network has halves
    assert resolve_precision("auto", "openvino", CPU, halves=True) == ("mixed" if cpu_has_bf16() else "f32")
    assert resolve_precision("auto", "openvino", CPU, halves=False) == "f32"
    assert resolve_precision("bf16", "openvino", CPU) == "bf16"
    assert resolve_precision("mixed", "torch", CPU, halves=True) == "mixed"
    with pytest.raises(VidcolorError, match="ONNX Runtime computes f32"):
        resolve_precision("bf16", "onnxruntime", CPU)
    with pytest.raises(VidcolorError, match="ONNX Runtime computes f32"):
        resolve_precision("mixed", "onnxruntime", CPU, halves=True)
    with pytest.raises(VidcolorError, match="cannot be cut in two"):
        resolve_precision("mixed", "openvino", CPU, halves=False)
    with pytest.raises(VidcolorError, match="one of"):
        resolve_precision("fp8", "torch", CPU)


def test_the_default_networks_halves_give_the_whole_networks_output():
    model = load_model("default")
    prefix, rest = model.halves()
    x = torch.rand(2, 1, 64, 96) - 0.5
    with torch.inference_mode():
        features = prefix(x)
        assert features.shape == (2, 24, 16, 24)  # the prefix ends at 1/4 resolution
        assert torch.equal(rest(features), model(x))
    assert VidNet(VidNetConfig(widths=(8, 8, 16, 16), num_bins=20)).halves() is None


@pytest.mark.skipif("openvino" not in EXPORTED, reason="needs OpenVINO")
def test_output_arrays_are_reused_only_once_no_one_holds_them():
    arrays = OutputArrays(limit=2)
    first, _ = arrays.take((2, 3))
    held = first
    second, _ = arrays.take((2, 3))
    assert second is not held  # the first is still held
    del first, second
    third, _ = arrays.take((2, 3))
    assert third is not held  # still held: the second, now free, is handed out again
    del third
    assert arrays.take((2, 3))[0] is not held
    del held
    shapes = {arrays.take((4, 5))[0].shape, arrays.take((2, 3))[0].shape}
    assert shapes == {(4, 5), (2, 3)}  # a free array of another shape gives way to a new one
    many = [arrays.take((2, 3))[0] for _ in range(4)]  # beyond the limit: new arrays, not kept
    assert len({id(a) for a in many}) == 4


@pytest.mark.skipif("openvino" not in EXPORTED, reason="needs OpenVINO")
def test_a_runners_outputs_are_not_overwritten_while_held(tmp_path):
    model = small_model(3)
    run = make_runner(model, "openvino", CPU, (32, 32), "f32", cache=ExportCache(tmp_path))
    inputs = [torch.rand(2, 1, 32, 32) - 0.5 for _ in range(6)]
    outputs = [run(x) for x in inputs]  # more than the pool keeps
    with torch.inference_mode():
        for x, out in zip(inputs, outputs, strict=True):
            torch.testing.assert_close(out, model(x), atol=2e-3, rtol=1e-3)


@pytest.mark.parametrize("runtime", EXPORTED)
@pytest.mark.parametrize("name", ["vidnet", "eccv16", "siggraph17"])
def test_every_model_runs_in_every_runtime_at_any_batch(tmp_path, runtime, name):
    if name == "vidnet":
        model = VidNet(VidNetConfig(widths=(8, 16, 16, 32), num_bins=40))
        torch.nn.init.normal_(model.head.weight, std=0.5)
    else:
        release = tmp_path / ("colorization_release_v2-9b330a0b.pth" if name == "eccv16" else "siggraph17-df00044c.pth")
        fake_release(release, ECCV16_KEYS if name == "eccv16" else SIGGRAPH17_KEYS)
        model = load_model(release)
    model.eval()
    run = make_runner(model, runtime, CPU, (64, 96), "f32", cache=ExportCache(tmp_path))
    for batch in (1, 3):
        x = torch.rand(batch, 1, 64, 96) - 0.5
        with torch.inference_mode():
            expected = model(x)
        torch.testing.assert_close(run(x), expected, atol=2e-3 * max(1.0, expected.abs().max().item()), rtol=1e-3)


def small_model(seed: int) -> VidNet:
    torch.manual_seed(seed)
    model = VidNet(VidNetConfig(widths=(8, 8, 16, 16), num_bins=20)).eval()
    torch.nn.init.normal_(model.head.weight, std=0.5)
    return model


@pytest.mark.skipif(not EXPORTED, reason="no exported runtime installed")
def test_exports_are_cached_by_weights_and_a_damaged_entry_is_rebuilt(tmp_path, monkeypatch):
    runtime = EXPORTED[0]
    cache = ExportCache(tmp_path)
    model = small_model(0)
    x = torch.rand(2, 1, 32, 32) - 0.5
    with torch.inference_mode():
        expected = model(x)
    run = make_runner(model, runtime, CPU, (32, 32), "f32", cache)
    torch.testing.assert_close(run(x), expected, atol=1e-4, rtol=1e-4)
    key = export_key(model, runtime, (32, 32))
    files = cache.lookup(key)
    assert files is not None and all(p.exists() for p in files.values())
    assert export_key(small_model(1), runtime, (32, 32)) != key  # other weights, another entry
    assert export_key(model, runtime, (32, 64)) != key  # another shape, another entry

    stores = []
    original = ExportCache.store
    monkeypatch.setattr(ExportCache, "store", lambda self, *a: stores.append(a) or original(self, *a))
    make_runner(model, runtime, CPU, (32, 32), "f32", cache)
    assert stores == []  # served from the cache

    largest = max(files.values(), key=lambda p: p.stat().st_size)
    data = bytearray(largest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    largest.write_bytes(bytes(data))
    assert cache.lookup(key) is None  # never trusted
    run = make_runner(model, runtime, CPU, (32, 32), "f32", cache)
    assert len(stores) == 1  # rebuilt
    torch.testing.assert_close(run(x), expected, atol=1e-4, rtol=1e-4)
    assert cache.lookup(key) is not None

    (tmp_path / "runtimes" / f"{key}.json").write_text("{not json")
    assert cache.lookup(key) is None


@pytest.mark.skipif("openvino" not in EXPORTED, reason="needs OpenVINO")
def test_mixed_precision_exports_both_halves_and_runs_without_a_cache(tmp_path, monkeypatch):
    model = load_model("default").eval()
    x = torch.rand(3, 1, 64, 96) - 0.5
    with torch.inference_mode():
        expected = model(x)
    cache = ExportCache(tmp_path)
    run = make_runner(model, "openvino", CPU, (64, 96), "mixed", cache)
    assert len(list((tmp_path / "runtimes").glob("*.json"))) == 2  # the prefix and the rest, cached apart
    keys = {export_key(model, "openvino", (64, 96), part) for part in ("", "prefix", "rest")}
    assert len(keys) == 3
    out = run(x)
    assert out.shape == expected.shape
    assert (out - expected).abs().mean() < 0.01 * expected.abs().mean()  # bf16 in the rest, where native

    def unwritable(self, key, write):
        raise OSError("read-only cache")

    monkeypatch.setattr(ExportCache, "store", unwritable)
    in_memory = make_runner(model, "openvino", CPU, (64, 96), "mixed", ExportCache(tmp_path / "other"))
    assert (in_memory(x) - expected).abs().mean() < 0.01 * expected.abs().mean()  # built in memory instead


def test_runtime_choice(monkeypatch):
    assert resolve_runtime("torch", CPU) == "torch"
    assert resolve_runtime("auto", torch.device("cuda")) == "torch"
    with pytest.raises(VidcolorError, match="runs on the CPU"):
        resolve_runtime("openvino", torch.device("cuda"))
    with pytest.raises(VidcolorError, match="one of"):
        resolve_runtime("tensorrt", CPU)
    monkeypatch.setattr("vidcolor.runtime.installed", lambda name: name in ("torch", "onnxruntime"))
    assert resolve_runtime("auto", CPU) == "onnxruntime"
    with pytest.raises(VidcolorError, match="not installed"):
        resolve_runtime("openvino", CPU)
    monkeypatch.setattr("vidcolor.runtime.installed", lambda name: name == "torch")
    assert resolve_runtime("auto", CPU) == "torch"
    assert Colorizer(small_model(0), runtime="auto", precision="auto").runtime == "torch"


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (500, 500, (256, 256)),
        (360, 640, (192, 352)),
        (640, 360, (352, 192)),
        (480, 640, (224, 288)),
        (40, 4000, (32, 2560)),
    ],
)
def test_the_network_sees_frames_in_their_own_proportions_at_about_the_same_area(height, width, expected):
    shape = network_shape(height, width, 256, 32)
    assert shape == expected
    assert all(side % 32 == 0 and side >= 32 for side in shape)
    if min(shape) > 32:
        assert abs(shape[0] * shape[1] / 256**2 - 1) < 0.1
        assert abs(shape[1] / shape[0] / (width / height) - 1) < 0.2


@pytest.mark.parametrize("runtime", ["torch", *EXPORTED])
def test_a_wide_film_is_colorized_in_its_own_proportions(tmp_path, monkeypatch, runtime):
    monkeypatch.setenv("VIDCOLOR_CACHE", str(tmp_path))
    model = small_model(0)
    colorizer = Colorizer(model, size=64, runtime=runtime, precision="auto")
    lightness = torch.rand(2, 1, 90, 160) * 100
    logits = colorizer.logits(lightness)
    assert logits.shape[-2:] == (48 // model.output_stride, 80 // model.output_stride)  # 48 x 80 in
    with torch.inference_mode():
        squeezed = model(
            normalize_lightness(functional.interpolate(lightness, size=(48, 80), mode="bilinear", antialias=True))
        )
    torch.testing.assert_close(logits, squeezed, atol=1e-3, rtol=1e-3)
