"""The VAE's shapes and the TensorFlow conventions it reproduces, checked directly."""

import pytest
import torch
import torch.nn.functional as F

from facevae.config import MODEL_PRESETS, ModelConfig
from facevae.model.tf_same import DownConv, SameConv, UpConv, conv_transpose_stride2
from facevae.model.vae import DownStage, FaceVAE, UpStage, init_like_keras
from support.models import randomise_batchnorm


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


def tf_same_pads(kernel_size):
    """(before, after) padding of TensorFlow's 'same' for stride 2 on an even-sized input:
    max(k - 2, 0) in total, the odd pixel after."""
    total = max(kernel_size - 2, 0)
    return total // 2, total - total // 2


def literal_down(conv, x):
    """TF 'same' stride-2 convolution as written: pad (before, after), convolve."""
    before, after = tf_same_pads(conv.kernel_size[0])
    return F.conv2d(F.pad(x, (before, after, before, after)), conv.weight, conv.bias, stride=2)


def literal_up(conv, x):
    """TF 'same' stride-2 transposed convolution as written: the full output, TF's 2H window."""
    start, size = tf_same_pads(conv.kernel_size[0])[0], 2 * x.shape[-1]
    full = F.conv_transpose2d(x, conv.weight, conv.bias, stride=2)
    return full[..., start : start + size, start : start + size]


def literal_forward(model, images, noise):
    """The original Keras model computed literally, without the mirrored formulation."""
    config, x = model.config, images
    for stage in model.encoder.stages:
        x = F.leaky_relu(stage.bn(literal_down(stage.conv, x)), config.leaky_slope)
    flat = x.permute(0, 2, 3, 1).flatten(1)
    mean, log_var = F.relu(model.encoder.mean(flat)), F.relu(model.encoder.log_var(flat))
    decoder, b, c = model.decoder, config.bottom_size, config.channels[-1]
    z = model.sample_latent(mean, log_var, noise)
    x = F.leaky_relu(decoder.dense_bn(decoder.dense(z)), config.leaky_slope).view(-1, b, b, c).permute(0, 3, 1, 2)
    for stage in decoder.stages:
        x = F.leaky_relu(stage.bn(literal_up(stage.conv, x)), config.leaky_slope)
    rgb = decoder.to_rgb  # stride 1 'same' is symmetric in both frameworks for odd kernels
    return torch.sigmoid(F.conv2d(x, rgb.weight, rgb.bias, padding=rgb.kernel_size[0] // 2)), mean, log_var


def test_literal_tf_same_padding_matches_a_direct_computation():
    """TF 'same', stride 2, k=3 on an even input pads 0 before and 1 after."""
    assert tf_same_pads(3) == (0, 1)
    assert tf_same_pads(5) == (1, 2)
    conv = torch.nn.Conv2d(1, 1, 3, stride=2)
    x = torch.arange(64, dtype=torch.float32).view(1, 1, 8, 8)
    weight = conv.weight.detach()
    # Output pixel (i, j) covers input rows 2i..2i+2 and columns 2j..2j+2 (zero past the end).
    padded = F.pad(x, (0, 1, 0, 1))
    expected = torch.empty(4, 4)
    for i in range(4):
        for j in range(4):
            expected[i, j] = (padded[0, 0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * weight[0, 0]).sum() + conv.bias[0]
    assert torch.allclose(literal_down(conv, x)[0, 0], expected, atol=1e-4)


def test_literal_tf_same_transposed_conv_places_each_input_at_twice_its_index():
    """TF's transposed 'same' conv (stride 2) puts input (i, j) at output rows 2i..2i+2,
    cropped to 2H: a single 1 at (0, 0) spreads to the kernel's top-left 2x2 only."""
    conv = torch.nn.ConvTranspose2d(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3))
        conv.bias.zero_()
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = 1
    out = literal_up(conv, x)
    assert out.shape[-1] == 8
    assert torch.equal(out[0, 0, :3, :3], torch.arange(9, dtype=torch.float32).view(3, 3))
    # PyTorch's symmetric convention would shift the same response up-left by one pixel.
    symmetric = F.conv_transpose2d(x, conv.weight, stride=2, padding=1, output_padding=1)
    assert torch.equal(symmetric[0, 0, :2, :2], torch.tensor([[4.0, 5.0], [7.0, 8.0]]))


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
@pytest.mark.parametrize("training", [True, False])
def test_mirrored_tf_same_model_equals_the_literal_computation(kernel_size, training):
    """The model's mirrored formulation (see tf_same.py) gives the literal TF-'same' outputs and
    the same gradients, in training mode (batch statistics) and in eval mode."""
    torch.manual_seed(0)
    config = ModelConfig(image_size=16, channels=(4, 6), latent_dim=5, kernel_size=kernel_size, head_activation="relu")
    model = FaceVAE(config).train(training)
    randomise_batchnorm(model)  # non-trivial running statistics for eval mode
    images, noise = torch.rand(3, 3, 16, 16), torch.randn(3, 5)
    outputs = {}
    for name, forward in (("model", lambda: model.decode(model.sample_latent(*model.encode(images), noise))),
                          ("literal", lambda: literal_forward(model, images, noise)[0])):
        model.zero_grad()
        recon = forward()
        recon.square().mean().backward()
        outputs[name] = (recon.detach(), [p.grad.clone() for p in model.parameters()])
    assert torch.allclose(outputs["model"][0], outputs["literal"][0], atol=1e-6)
    for got, expected in zip(outputs["model"][1], outputs["literal"][1]):
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("kernel", "padding", "output_padding"), [(3, 1, 1), (5, 2, 1), (4, 1, 0)])
def test_transposed_conv_backward_is_exact(kernel, padding, output_padding):
    """The hand-written backward of conv_transpose_stride2 against autograd's numerical check."""
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 2, kernel, kernel, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    out = conv_transpose_stride2(x, weight, bias, padding, output_padding)
    assert out.shape == (2, 2, 8, 8)
    assert torch.autograd.gradcheck(lambda *a: conv_transpose_stride2(*a, padding, output_padding), (x, weight, bias))


def test_transposed_conv_under_bf16_autocast_matches_pytorchs_own():
    x = torch.randn(4, 8, 8, 8, requires_grad=True)
    weight, bias = torch.randn(8, 6, 3, 3, requires_grad=True), torch.randn(6, requires_grad=True)
    grads = []
    for op in (conv_transpose_stride2, lambda *a: F.conv_transpose2d(a[0], a[1], a[2], stride=2, padding=a[3],
                                                                     output_padding=a[4])):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = op(x, weight, bias, 1, 1)
        assert out.dtype == torch.bfloat16
        grads.append(torch.autograd.grad(out.float().square().sum(), (x, weight, bias)))
    for ours, theirs in zip(*grads):
        assert ours.dtype == theirs.dtype == torch.float32
        assert torch.allclose(ours, theirs, rtol=2e-2, atol=2e-2 * float(theirs.abs().max()))


def _randomised(model: FaceVAE) -> FaceVAE:
    """Non-trivial batch-norm statistics and affine parameters, in eval mode."""
    return randomise_batchnorm(model, affine=True).eval()


@pytest.mark.parametrize("padding", ["tf_same", "symmetric"])
def test_decoder_reshapes_dense_units_in_keras_channels_last_order(padding):
    """What reaches the first up-stage is the dense layer's units laid out as Keras's Reshape
    does (unit (row * b + col) * c + channel goes to channel, row, col), computed here with
    plain Python indexing; a channels-first view of the same units fails this."""
    torch.manual_seed(0)
    config = ModelConfig(image_size=16, channels=(3, 5), latent_dim=4, padding=padding)  # bottom 4 x 4 x 5
    model = _randomised(FaceVAE(config))
    seen = []
    model.decoder.stages[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    z = torch.randn(2, 4)
    with torch.no_grad():
        model.decode(z)
        units = F.leaky_relu(model.decoder.dense_bn(model.decoder.dense(z)), config.leaky_slope)  # 2 x 80
    (first_stage_input,) = seen  # in the working orientation: both spatial axes reversed for tf_same
    if padding == "tf_same":
        first_stage_input = first_stage_input.flip(-2, -1)
    b, c = config.bottom_size, config.channels[-1]
    expected = torch.empty(2, c, b, b)
    for n in range(2):
        for row in range(b):
            for col in range(b):
                for channel in range(c):
                    expected[n, channel, row, col] = units[n, (row * b + col) * c + channel]
    assert torch.equal(first_stage_input, expected)
    assert not torch.equal(units.view(2, c, b, b), expected)  # the layouts differ, so the test can tell


def test_encoder_flattens_in_keras_channels_last_order():
    """The dense heads read the last feature map as Keras's Flatten does: index (row * b + col) * c + channel."""
    torch.manual_seed(0)
    config = ModelConfig(image_size=16, channels=(3, 5), latent_dim=4)
    model = _randomised(FaceVAE(config))
    seen = []
    model.encoder.stages.register_forward_hook(lambda module, args, out: seen.append(out.clone()))
    model.encoder.mean.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    with torch.no_grad():
        model.encode(torch.rand(2, 3, 16, 16))
    features, flat = seen[0].flip(-2, -1), seen[1]  # features back from the working orientation
    b, c = config.bottom_size, config.channels[-1]
    for row in range(b):
        for col in range(b):
            for channel in range(c):
                assert flat[1, (row * b + col) * c + channel] == features[1, channel, row, col]


def test_convolutions_own_their_weights_and_run():
    """Each stage's conv module is the convolution the stage runs (no functional side path)."""
    torch.manual_seed(0)
    model = _randomised(FaceVAE(ModelConfig(image_size=16, channels=(3, 5), latent_dim=4)))
    x = torch.rand(2, 3, 16, 16)
    down = model.encoder.stages[0]
    assert isinstance(down, DownStage) and isinstance(down.conv, DownConv)
    with torch.no_grad():
        assert torch.equal(down(x), F.leaky_relu(down.bn(down.conv(x)), down.slope))
        up = model.decoder.stages[0]
        assert isinstance(up, UpStage) and isinstance(up.conv, UpConv)
        h = torch.rand(2, 5, 4, 4)
        assert torch.equal(up(h), F.leaky_relu(up.bn(up.conv(h)), up.slope))
        assert up.conv(h).shape == (2, 5, 8, 8)
        assert isinstance(model.decoder.to_rgb, SameConv)
        # mirrored: the kernel applies reversed on mirrored maps, i.e. the module is the
        # stored kernel's convolution seen through a mirror
        rgb = model.decoder.to_rgb
        maps = torch.rand(2, 3, 8, 8)
        plain = F.conv2d(maps, rgb.weight, rgb.bias, padding=1)
        assert torch.allclose(rgb(maps.flip(-2, -1)).flip(-2, -1), plain, atol=1e-6)


def test_state_dict_keys_are_the_stored_format():
    """Bundles and checkpoints store these names; a rename would orphan every saved model."""
    model = FaceVAE(ModelConfig(image_size=8, channels=(2,), latent_dim=2))
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    expected = (["encoder.stages.0.conv.weight", "encoder.stages.0.conv.bias"]
                + [f"encoder.stages.0.bn.{name}" for name in bn]
                + ["encoder.mean.weight", "encoder.mean.bias", "encoder.log_var.weight", "encoder.log_var.bias",
                   "decoder.dense.weight", "decoder.dense.bias"]
                + [f"decoder.dense_bn.{name}" for name in bn]
                + ["decoder.stages.0.conv.weight", "decoder.stages.0.conv.bias"]
                + [f"decoder.stages.0.bn.{name}" for name in bn]
                + ["decoder.to_rgb.weight", "decoder.to_rgb.bias"])
    assert list(model.state_dict()) == expected
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert shapes["encoder.stages.0.conv.weight"] == (2, 3, 3, 3)  # out x in x k x k (Conv2d)
    assert shapes["decoder.stages.0.conv.weight"] == (2, 2, 3, 3)  # in x out x k x k (ConvTranspose2d)
    assert shapes["decoder.to_rgb.weight"] == (3, 2, 3, 3)


def test_keras_initialisation_is_glorot_uniform_with_zero_biases():
    """Keras's defaults, with fans from Keras's kernel layouts: Conv2D (k, k, in, out),
    Conv2DTranspose (k, k, out, in), Dense (in, out); glorot bound sqrt(6 / (fan_in + fan_out))."""
    torch.manual_seed(0)
    model = init_like_keras(FaceVAE(MODEL_PRESETS["celeba64"]))
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]
    assert len(layers) == 4 + 2 + 1 + 4 + 1  # down convs, two heads, dense, up convs, to_rgb
    for layer in layers:
        if isinstance(layer, torch.nn.Linear):
            fan_in, fan_out = layer.in_features, layer.out_features
        else:
            area = layer.kernel_size[0] * layer.kernel_size[1]
            fan_in, fan_out = layer.in_channels * area, layer.out_channels * area
        bound = (6 / (fan_in + fan_out)) ** 0.5
        weight = layer.weight.detach()
        assert weight.abs().max() <= bound
        if weight.numel() >= 1000:  # uniform on [-bound, bound]: std bound / sqrt(3)
            assert weight.std().item() == pytest.approx(bound / 3**0.5, rel=0.1)
        assert torch.count_nonzero(layer.bias) == 0
    # PyTorch's own defaults are narrower and have random biases: the re-initialisation changed them
    assert torch.count_nonzero(FaceVAE(MODEL_PRESETS["celeba64"]).encoder.mean.bias) > 0


def test_new_models_have_linear_heads_and_the_original_preset_keeps_relu():
    images = torch.rand(3, 3, 64, 64)
    torch.manual_seed(0)
    linear = FaceVAE(MODEL_PRESETS["celeba64"]).eval()
    torch.manual_seed(0)
    relu = FaceVAE(MODEL_PRESETS["original"]).eval()
    relu.load_state_dict(linear.state_dict())  # the same weights: only the heads' activation differs
    (mean, log_var), (relu_mean, relu_log_var) = linear.encode(images), relu.encode(images)
    assert (mean < 0).any() and (log_var < 0).any()
    assert torch.equal(relu_mean, mean.clamp(min=0)) and torch.equal(relu_log_var, log_var.clamp(min=0))
