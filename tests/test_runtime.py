"""Inference runtimes: the same colours as PyTorch, the export cache, the runtime choice."""

from __future__ import annotations

import av
import pytest
import torch

from tests.conftest import SHARED
from tests.test_models import ECCV16_KEYS, SIGGRAPH17_KEYS, fake_release
from vidcolor.color import rgb_to_lab
from vidcolor.colorizer import Colorizer, build_colorizer
from vidcolor.errors import VidcolorError
from vidcolor.evaluation import load_rgb
from vidcolor.inputs import find_images
from vidcolor.models import VidNet, VidNetConfig, load_model
from vidcolor.runtime import ExportCache, export_key, installed, make_runner, resolve_runtime

EXPORTED = [r for r in ("openvino", "onnxruntime") if installed(r)]
CPU = torch.device("cpu")


def shared_lightness() -> torch.Tensor:
    """``(N, 1, 256, 256)`` L of four validation photos and four frames of a shared colour clip."""
    photos = [load_rgb(p) for p in find_images([SHARED / "data" / "val"])[:4]]
    with av.open(str(SHARED / "data" / "video" / "davis-tennis.mp4")) as container:
        frames = [
            torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1).float() / 255
            for f in container.decode(video=0)
        ]
    images = photos + frames[:: max(1, len(frames) // 4)][:4]
    resized = [
        torch.nn.functional.interpolate(i[None], size=(256, 256), mode="bilinear", antialias=True) for i in images
    ]
    return rgb_to_lab(torch.cat(resized))[:, :1]


@pytest.mark.skipif(not (SHARED / "data" / "val").exists(), reason="needs ../shared/data")
@pytest.mark.parametrize("runtime", EXPORTED)
def test_every_runtime_gives_torchs_colours_on_shared_photos_and_clip(runtime):
    lightness = shared_lightness()
    reference = build_colorizer("default", 256, "cpu", None, None, runtime="torch").ab_lowres(lightness)
    other = build_colorizer("default", 256, "cpu", None, None, runtime=runtime).ab_lowres(lightness)
    assert other.shape == reference.shape
    assert (other - reference).abs().mean() < 0.5  # Lab units
    assert (other - reference).abs().mean(dim=(1, 2, 3)).max() < 0.5  # on every image


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
    run = make_runner(model, runtime, CPU, 64, half=False, cache=ExportCache(tmp_path))
    for batch in (1, 3):
        x = torch.rand(batch, 1, 64, 64) - 0.5
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
    torch.testing.assert_close(make_runner(model, runtime, CPU, 32, False, cache)(x), expected, atol=1e-4, rtol=1e-4)
    key = export_key(model, runtime, 32)
    files = cache.lookup(key)
    assert files is not None and all(p.exists() for p in files.values())
    assert export_key(small_model(1), runtime, 32) != key  # other weights, another entry
    assert export_key(model, runtime, 64) != key  # another size, another entry

    stores = []
    original = ExportCache.store
    monkeypatch.setattr(ExportCache, "store", lambda self, *a: stores.append(a) or original(self, *a))
    make_runner(model, runtime, CPU, 32, False, cache)
    assert stores == []  # served from the cache

    largest = max(files.values(), key=lambda p: p.stat().st_size)
    data = bytearray(largest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    largest.write_bytes(bytes(data))
    assert cache.lookup(key) is None  # never trusted
    run = make_runner(model, runtime, CPU, 32, False, cache)
    assert len(stores) == 1  # rebuilt
    torch.testing.assert_close(run(x), expected, atol=1e-4, rtol=1e-4)
    assert cache.lookup(key) is not None

    (tmp_path / "runtimes" / f"{key}.json").write_text("{not json")
    assert cache.lookup(key) is None


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
    assert Colorizer(small_model(0), runtime="auto").runtime == "torch"
