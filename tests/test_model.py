"""The VAE's shapes and the TensorFlow conventions it reproduces, checked directly."""

import pytest
import torch
import torch.nn.functional as F

from facevae.config import MODEL_PRESETS, ModelConfig
from facevae.model import DownStage, FaceVAE, UpStage, tf_same_pads


@pytest.mark.parametrize("preset", ["original", "seed", "compact", "celeba128", "celeba256"])
def test_every_preset_encodes_and_decodes_its_image_size(preset):
    config = MODEL_PRESETS[preset]
    model = FaceVAE(config).eval()
    images = torch.rand(2, 3, config.image_size, config.image_size)
    mean, log_var = model.encode(images)
    assert mean.shape == log_var.shape == (2, config.latent_dim)
    decoded = model.decode(mean)
    assert decoded.shape == images.shape
    assert 0 <= decoded.min() and decoded.max() <= 1


def test_original_preset_heads_are_relu_like_the_keras_model():
    model = FaceVAE(MODEL_PRESETS["original"]).eval()
    mean, log_var = model.encode(torch.rand(3, 3, 64, 64))
    assert (mean >= 0).all() and (log_var >= 0).all()


def test_tf_same_padding_matches_a_direct_computation():
    """TF 'same', stride 2, k=3 on an even input pads 0 before and 1 after."""
    assert tf_same_pads(3) == (0, 1)
    assert tf_same_pads(5) == (1, 2)
    config = ModelConfig(image_size=8, channels=(1,), latent_dim=2)
    stage = DownStage(1, 1, config)
    x = torch.arange(64, dtype=torch.float32).view(1, 1, 8, 8)
    weight = stage.conv.weight.detach()
    # Output pixel (i, j) covers input rows 2i..2i+2 and columns 2j..2j+2 (zero past the end).
    padded = F.pad(x, (0, 1, 0, 1))
    expected = torch.empty(4, 4)
    for i in range(4):
        for j in range(4):
            expected[i, j] = (padded[0, 0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * weight[0, 0]).sum() + stage.conv.bias[0]
    before, after = stage.pads
    got = stage.conv(F.pad(x, (before, after, before, after)))
    assert torch.allclose(got[0, 0], expected, atol=1e-4)


def test_tf_same_transposed_conv_places_each_input_at_twice_its_index():
    """TF's transposed 'same' conv (stride 2) puts input (i, j) at output rows 2i..2i+2,
    cropped to 2H: a single 1 at (0, 0) spreads to the kernel's top-left 2x2 only."""
    config = ModelConfig(image_size=8, channels=(1,), latent_dim=2)
    stage = UpStage(1, 1, config)
    with torch.no_grad():
        stage.conv.weight.copy_(torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3))
        stage.conv.bias.zero_()
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = 1
    full = stage.conv(x)
    out = full[..., :8, :8]
    assert out.shape[-1] == 8
    assert torch.equal(out[0, 0, :3, :3], torch.arange(9, dtype=torch.float32).view(3, 3))
    # PyTorch's symmetric convention would shift the same response up-left by one pixel.
    symmetric = torch.nn.functional.conv_transpose2d(x, stage.conv.weight, stride=2, padding=1, output_padding=1)
    assert torch.equal(symmetric[0, 0, :2, :2], torch.tensor([[4.0, 5.0], [7.0, 8.0]]))


def test_channels_last_flatten_order_matches_keras_reshape():
    """Decoder dense unit k maps to (row, col, channel) = divmod in channels-last order."""
    config = ModelConfig(image_size=8, channels=(2,), latent_dim=2)  # bottom 4x4x2
    model = FaceVAE(config).eval()
    flat = torch.arange(32, dtype=torch.float32).view(1, 32)
    b, c = config.bottom_size, config.channels[-1]
    as_keras = flat.view(1, b, b, c).permute(0, 3, 1, 2)
    # unit index = (row * b + col) * c + channel
    assert as_keras[0, 1, 2, 3] == (2 * b + 3) * c + 1
    features = torch.rand(1, c, b, b)
    flattened = features.permute(0, 2, 3, 1).flatten(1)
    assert torch.equal(flattened.view(1, b, b, c).permute(0, 3, 1, 2), features)
    assert model.config.flatten_order == "channels_last"
