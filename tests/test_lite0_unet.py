import pytest
import torch

from vidcolor.bins import gamut_bins
from vidcolor.models import Lite0UNet, Lite0UNetConfig, build_model, load_model, save_model
from vidcolor.models.lite0_unet import imagenet_weights_file, load_imagenet_encoder


def test_output_shapes_for_classification_and_regression():
    x = torch.randn(2, 1, 64, 96) * 0.3
    assert Lite0UNet(Lite0UNetConfig(num_bins=17)).eval()(x).shape == (2, 17, 16, 24)
    assert Lite0UNet(Lite0UNetConfig(kind="regression")).eval()(x).shape == (2, 2, 16, 24)


def test_encoder_starts_from_the_packaged_imagenet_weights():
    model = Lite0UNet()
    copied = load_imagenet_encoder(model)
    state = torch.load(imagenet_weights_file(), map_location="cpu", weights_only=True)
    assert copied > 250  # stem, bn and every block's convolutions and batch norms
    for key in ("_conv_stem.weight", "_blocks.15._project_conv.weight", "_blocks.7._bn1.running_var"):
        assert torch.equal(model.state_dict()[key], state[key])
    # the classifier head of the file is not part of the network
    assert not any(k.startswith(("_conv_head", "_fc")) for k in model.state_dict())


def test_parameter_groups_split_the_network_without_overlap():
    model = Lite0UNet()
    frozen, encoder, decoder = model.frozen_parameters(), model.encoder_parameters(), model.decoder_parameters()
    ids = [id(p) for p in [*frozen, *encoder, *decoder]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert any(p is model.head.weight for p in decoder) and any(p is model._conv_stem.weight for p in frozen)


def test_exported_model_loads_with_every_weight(tmp_path):
    bins = gamut_bins()
    model = build_model("lite0-unet", {"num_bins": len(bins)}, bins).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so that they must travel too
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    save_model(model, tmp_path / "m.safetensors", half=False)
    loaded = load_model(tmp_path / "m.safetensors")
    assert isinstance(loaded, Lite0UNet) and torch.equal(loaded.bins, bins)
    x = torch.randn(1, 1, 64, 64) * 0.3
    torch.testing.assert_close(loaded(x), model(x))


def test_size_must_fit_the_encoder():
    from vidcolor.colorizer import Colorizer
    from vidcolor.errors import VidcolorError

    model = build_model("lite0-unet", {"num_bins": 4}, torch.zeros(4, 2))
    with pytest.raises(VidcolorError, match="multiple of 32"):
        Colorizer(model, size=80)
