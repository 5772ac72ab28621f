import json
import os
import random
from pathlib import Path

import pytest
import torch

from vidcolor.bins import ANNEAL_TEMPERATURE
from vidcolor.colorizer import ColorizerSpec
from vidcolor.errors import VidcolorError
from vidcolor.models import (
    ECCV16,
    SIGGRAPH17,
    Lite0UNet,
    VidNet,
    VidNetConfig,
    build_model,
    load_model,
    model_card,
    save_model,
)

BN = "bn"


def conv(prefix: str, c_out: int, c_in: int, k: int = 3, bias: bool = True) -> list[tuple[str, tuple]]:
    out = [(f"{prefix}.weight", (c_out, c_in, k, k))]
    return out + [(f"{prefix}.bias", (c_out,))] if bias else out


def deconv(prefix: str, c_in: int, c_out: int) -> list[tuple[str, tuple]]:
    return [(f"{prefix}.weight", (c_in, c_out, 4, 4)), (f"{prefix}.bias", (c_out,))]


def norm(prefix: str, c: int) -> list[tuple[str, tuple]]:
    return [(f"{prefix}.{name}", (c,)) for name in ("weight", "bias", "running_mean", "running_var")]


# The tensors of Zhang et al.'s released files (num_batches_tracked aside).
ECCV16_KEYS = [
    *conv("model1.0", 64, 1),
    *conv("model1.2", 64, 64),
    *norm("model1.4", 64),
    *conv("model2.0", 128, 64),
    *conv("model2.2", 128, 128),
    *norm("model2.4", 128),
    *conv("model3.0", 256, 128),
    *conv("model3.2", 256, 256),
    *conv("model3.4", 256, 256),
    *norm("model3.6", 256),
    *conv("model4.0", 512, 256),
    *conv("model4.2", 512, 512),
    *conv("model4.4", 512, 512),
    *norm("model4.6", 512),
    *[
        entry
        for block in (5, 6, 7)
        for entry in (
            *conv(f"model{block}.0", 512, 512),
            *conv(f"model{block}.2", 512, 512),
            *conv(f"model{block}.4", 512, 512),
            *norm(f"model{block}.6", 512),
        )
    ],
    *deconv("model8.0", 512, 256),
    *conv("model8.2", 256, 256),
    *conv("model8.4", 256, 256),
    *conv("model8.6", 313, 256, k=1),
    ("model_out.weight", (2, 313, 1, 1)),
]
SIGGRAPH17_KEYS = [
    *conv("model1.0", 64, 4),
    *conv("model1.2", 64, 64),
    *norm("model1.4", 64),
    *conv("model2.0", 128, 64),
    *conv("model2.2", 128, 128),
    *norm("model2.4", 128),
    *conv("model3.0", 256, 128),
    *conv("model3.2", 256, 256),
    *conv("model3.4", 256, 256),
    *norm("model3.6", 256),
    *conv("model4.0", 512, 256),
    *conv("model4.2", 512, 512),
    *conv("model4.4", 512, 512),
    *norm("model4.6", 512),
    *[
        entry
        for block in (5, 6, 7)
        for entry in (
            *conv(f"model{block}.0", 512, 512),
            *conv(f"model{block}.2", 512, 512),
            *conv(f"model{block}.4", 512, 512),
            *norm(f"model{block}.6", 512),
        )
    ],
    *deconv("model8up.0", 512, 256),
    *conv("model3short8.0", 256, 256),
    *conv("model8.1", 256, 256),
    *conv("model8.3", 256, 256),
    *norm("model8.5", 256),
    *deconv("model9up.0", 256, 128),
    *conv("model2short9.0", 128, 128),
    *conv("model9.1", 128, 128),
    *norm("model9.3", 128),
    *deconv("model10up.0", 128, 128),
    *conv("model1short10.0", 128, 64),
    *conv("model10.1", 128, 128),
    *conv("model_class.0", 529, 256, k=1),
    *conv("model_out.0", 2, 128, k=1),
]


def shapes_without_counters(model: torch.nn.Module) -> list[tuple[str, tuple]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]


@pytest.mark.parametrize(("model_class", "expected"), [(ECCV16, ECCV16_KEYS), (SIGGRAPH17, SIGGRAPH17_KEYS)])
def test_state_dict_keys_and_shapes_match_the_released_files(model_class, expected):
    assert shapes_without_counters(model_class()) == expected


def fake_release(path: Path, keys: list[tuple[str, tuple]]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=generator) * 0.01 for k, shape in keys}
    for k in state:
        if k.endswith("running_var"):
            state[k] = state[k].abs() + 1
    torch.save(state, path)
    return state


def test_eccv16_file_loads_and_bins_come_from_its_output_conv(tmp_path):
    state = fake_release(tmp_path / "colorization_release_v2-9b330a0b.pth", ECCV16_KEYS)
    model = load_model(tmp_path / "colorization_release_v2-9b330a0b.pth")
    assert isinstance(model, ECCV16) and model.kind == "classification"
    assert torch.allclose(model.bins, state["model_out.weight"][:, :, 0, 0].T * 110)
    logits = model(torch.zeros(1, 1, 64, 64))
    assert logits.shape == (1, 313, 16, 16)


def test_siggraph17_file_loads_as_regression(tmp_path):
    fake_release(tmp_path / "siggraph17-df00044c.pth", SIGGRAPH17_KEYS)
    model = load_model(tmp_path / "siggraph17-df00044c.pth")
    assert isinstance(model, SIGGRAPH17) and model.kind == "regression"
    ab = model(torch.zeros(1, 1, 64, 64))
    assert ab.shape == (1, 2, 64, 64) and ab.abs().max() <= 110


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickled_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"model": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(VidcolorError, match="evil.pth: not a loadable weight file"):
        load_model(tmp_path / "evil.pth")
    assert not (tmp_path / "pwned").exists()


def test_corrupt_wrong_and_missing_files_give_clear_errors(tmp_path):
    for seed in range(50):  # junk makes torch's restricted unpickler fail in many different ways
        (tmp_path / "junk.pth").write_bytes(random.Random(seed).randbytes(1000))
        with pytest.raises(VidcolorError, match="junk.pth: not a loadable weight file"):
            load_model(tmp_path / "junk.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00" + os.urandom(100))
    with pytest.raises(VidcolorError, match="not a readable safetensors file"):
        load_model(tmp_path / "junk.safetensors")
    keys = [(k, (7, *s[1:]) if k == "model8.6.weight" else s) for k, s in ECCV16_KEYS]
    fake_release(tmp_path / "bad.pth", keys)
    with pytest.raises(VidcolorError, match="wrong shape for model8.6.weight"):
        load_model(tmp_path / "bad.pth")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(VidcolorError, match="unrecognised weights"):
        load_model(tmp_path / "other.pth")
    with pytest.raises(VidcolorError, match="no such model file"):
        load_model(tmp_path / "absent.pth")
    with pytest.raises(VidcolorError, match="does not ship eccv16"):
        load_model("eccv16")


def test_vidnet_safetensors_round_trip(tmp_path):
    bins = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    model = build_model("vidnet", VidNetConfig(widths=(8, 8, 16, 16), num_bins=3).to_dict(), bins).eval()
    save_model(model, tmp_path / "m.safetensors", half=False)
    loaded = load_model(tmp_path / "m.safetensors")
    assert isinstance(loaded, VidNet) and loaded.config.widths == (8, 8, 16, 16)
    assert torch.equal(loaded.bins, bins)
    x = torch.randn(2, 1, 32, 32)
    assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_vidnet_shapes_for_both_losses():
    x = torch.randn(1, 1, 64, 96)
    assert VidNet(VidNetConfig(num_bins=17)).eval()(x).shape == (1, 17, 16, 24)
    assert VidNet(VidNetConfig(kind="regression")).eval()(x).shape == (1, 2, 16, 24)


def test_shipped_default_model_and_card():
    model = load_model()
    card = model_card()
    assert isinstance(model, Lite0UNet) and model.kind == "classification"
    assert card["architecture"] == model.architecture and len(model.bins) == card["bins"]["count"]
    size = (Path(__file__).parent.parent / "vidcolor" / "weights" / "default.safetensors").stat().st_size
    assert size < 10 * 2**20
    for field in ("command", "steps", "epochs", "data", "metrics", "default_decoding"):
        assert field in card, field
    metrics = card["metrics"]
    assert metrics["model"]["psnr"] >= metrics["grey"]["psnr"] - 0.5
    assert metrics["model"]["auc"] >= metrics["grey"]["auc"]
    assert metrics["model"]["colourfulness"] >= 0.5 * metrics["model"]["true_colourfulness"]
    json.dumps(card)


def test_the_cards_temperature_serves_the_annealed_mean_and_the_mrf():
    """The card's temperature is the model's: ``--decode mrf`` reads the distribution at it too."""
    temperature = model_card()["default_decoding"]["temperature"]
    assert temperature != ANNEAL_TEMPERATURE
    assert ColorizerSpec().decoding().temperature == temperature
    assert ColorizerSpec(decode_method="mrf").decoding().temperature == temperature
    assert ColorizerSpec(decode_method="mrf", temperature=0.8).decoding().temperature == 0.8
