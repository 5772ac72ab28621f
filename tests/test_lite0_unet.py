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


@pytest.mark.parametrize("decoder", ["dense", "separable"])
def test_exported_model_loads_with_every_weight(tmp_path, decoder):
    bins = gamut_bins()
    model = build_model("lite0-unet", {"num_bins": len(bins), "decoder": decoder}, bins).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so that they must travel too
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    save_model(model, tmp_path / "m.safetensors", half=False)
    loaded = load_model(tmp_path / "m.safetensors")
    assert isinstance(loaded, Lite0UNet) and torch.equal(loaded.bins, bins)
    assert loaded.config.decoder == decoder
    x = torch.randn(1, 1, 64, 64) * 0.3
    torch.testing.assert_close(loaded(x), model(x))


def test_size_must_fit_the_encoder():
    from vidcolor.colorizer import Colorizer
    from vidcolor.errors import VidcolorError

    model = build_model("lite0-unet", {"num_bins": 4}, torch.zeros(4, 2))
    with pytest.raises(VidcolorError, match="multiple of 32"):
        Colorizer(model, size=80, runtime="torch", precision="f32")


def test_separable_decoder_convolutions_are_pointwise_and_depthwise():
    dense, separable = Lite0UNet(Lite0UNetConfig()), Lite0UNet(Lite0UNetConfig(decoder="separable"))
    convs = [m for m in separable.up8.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.groups) for c in convs] == [((1, 1), 1), ((3, 3), 96)]
    dense_size = sum(p.numel() for p in dense.decoder_parameters())
    separable_size = sum(p.numel() for p in separable.decoder_parameters())
    assert separable_size < dense_size / 4


def test_a_configuration_without_a_decoder_is_dense_and_an_unknown_one_is_refused():
    from vidcolor.errors import VidcolorError

    assert Lite0UNetConfig.from_dict({"decoder_widths": [160, 96, 64]}).decoder == "dense"  # files before the choice
    with pytest.raises(VidcolorError, match="unknown lite0-unet decoder 'wide'"):
        build_model("lite0-unet", {"num_bins": 4, "decoder": "wide"}, torch.zeros(4, 2))
