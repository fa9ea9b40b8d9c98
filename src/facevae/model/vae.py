"""The convolutional VAE: encoder, decoder and the pair, built from a ModelConfig alone.

Images are float tensors in [0, 1], N x C x H x W. Latent codes are N x latent_dim.
With the "original" preset this is the original Keras model layer for layer, including
TensorFlow's asymmetric 'same' padding and its channels-last flatten order, so its
weights load unchanged (see facevae.interop.keras).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig

# TensorFlow's 'same' padding for stride 2 on an even size pads k - 2 pixels in total and puts
# the odd one after: (before, after) = ((k - 3) / 2, (k - 1) / 2) for odd k, (0, 1) for k = 3,
# where PyTorch's symmetric padding = k // 2 gives (1, 1) and shifts every output by one.
# With both spatial axes reversed, TF's padding becomes ((k - 1) / 2, (k - 3) / 2): PyTorch's
# symmetric k // 2 with reversed kernels (the extra pixel at the end is never reached by a
# stride-2 window). So "tf_same" models compute on mirrored feature maps: Encoder and Decoder
# reverse the axes once on the way in and once on the way out, and every stage in between
# runs PyTorch's own symmetric convolutions, the same as the "symmetric" models. That is the
# same arithmetic as padding explicitly and cropping the full transposed convolution, without
# the padded copies and odd-sized outputs that take oneDNN's slow paths (a training step of
# the original model was slower that way: docs/benchmarks.md; tests/model/test_vae.py checks both against each other).


def mirror(tensor: torch.Tensor, mirrored: bool) -> torch.Tensor:
    """tensor (... x H x W) with both spatial axes reversed when `mirrored`: feature maps into
    and out of the working orientation, and kernels as they apply there."""
    return tensor.flip(-2, -1) if mirrored else tensor


class _TransposedConv(torch.autograd.Function):
    """conv_transpose2d (stride 2) whose backward is the two ordinary convolutions it equals.

    The input gradient of a transposed convolution is the strided convolution with the same
    weight, and its weight gradient is that convolution's weight gradient with x as the
    output gradient. PyTorch's own CPU backward gets the same numbers (bit for bit in fp32)
    but is slower in bf16 for the 64 x 64 x 128 stage.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: int,  # type: ignore[override]
                output_padding: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv_transpose2d(x, weight, bias, stride=2, padding=padding, output_padding=output_padding)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        p = ctx.padding
        grad_x = F.conv2d(grad_out, weight, stride=2, padding=p) if ctx.needs_input_grad[0] else None
        grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_weight = torch.ops.aten.convolution_backward(
                x, grad_out, weight, None, [2, 2], [p, p], [1, 1], False, [0, 0], 1, [False, True, False])[1]
        grad_bias = grad_out.sum((0, 2, 3)) if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias, None, None


def conv_transpose_stride2(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: int,
                           output_padding: int) -> torch.Tensor:
    """F.conv_transpose2d(x, weight, bias, stride=2, ...) with the faster backward when a
    gradient is wanted; casts like autocast would, since autocast skips custom functions."""
    if not torch.is_grad_enabled():
        return F.conv_transpose2d(x, weight, bias, stride=2, padding=padding, output_padding=output_padding)
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight, bias = x.to(dtype), weight.to(dtype), bias.to(dtype)
    return _TransposedConv.apply(x, weight, bias, padding, output_padding)


class DownStage(nn.Module):
    """Conv (stride 2) -> BatchNorm -> LeakyReLU: halves H and W (mirrored maps when tf_same)."""

    def __init__(self, in_channels: int, out_channels: int, config: ModelConfig) -> None:
        super().__init__()
        self.mirrored = config.padding == "tf_same"
        self.conv = nn.Conv2d(in_channels, out_channels, config.kernel_size, stride=2, padding=config.kernel_size // 2)
        self.bn = nn.BatchNorm2d(out_channels, eps=config.bn_eps, momentum=config.bn_momentum)
        self.slope = config.leaky_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C_in x H x W -> N x C_out x H/2 x W/2."""
        x = F.conv2d(x, mirror(self.conv.weight, self.mirrored), self.conv.bias, stride=2, padding=self.conv.padding)
        # In place: batch norm's backward needs its input, not its output (saves a copy per stage).
        return F.leaky_relu(self.bn(x), self.slope, inplace=True)


class UpStage(nn.Module):
    """Transposed conv (stride 2) -> BatchNorm -> LeakyReLU: doubles H and W (mirrored maps when tf_same)."""

    def __init__(self, in_channels: int, out_channels: int, config: ModelConfig) -> None:
        super().__init__()
        self.mirrored = config.padding == "tf_same"
        k = config.kernel_size
        # Output size exactly 2H: (H - 1) * 2 - 2 * (k // 2) + k + 1 for odd k.
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, k, stride=2, padding=k // 2, output_padding=1)
        self.bn = nn.BatchNorm2d(out_channels, eps=config.bn_eps, momentum=config.bn_momentum)
        self.slope = config.leaky_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C_in x H x W -> N x C_out x 2H x 2W."""
        x = conv_transpose_stride2(x, mirror(self.conv.weight, self.mirrored), self.conv.bias,
                                   self.conv.padding[0], self.conv.output_padding[0])
        return F.leaky_relu(self.bn(x), self.slope, inplace=True)  # in place: see DownStage


class Encoder(nn.Module):
    """N x C x H x W images in [0, 1] -> (mean, log_var), each N x latent_dim."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        widths = (config.image_channels, *config.channels)
        self.stages = nn.Sequential(*(DownStage(widths[i], widths[i + 1], config) for i in range(len(config.channels))))
        self.mean = nn.Linear(config.flat_features, config.latent_dim)
        self.log_var = nn.Linear(config.flat_features, config.latent_dim)
        self.mirrored = config.padding == "tf_same"

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = mirror(self.stages(mirror(images, self.mirrored)), self.mirrored)  # N x C_last x b x b
        if self.config.flatten_order == "channels_last":
            features = features.permute(0, 2, 3, 1)  # N x b x b x C_last, Keras's Flatten order
        flat = features.flatten(1)
        mean, log_var = self.mean(flat), self.log_var(flat)
        if self.config.head_activation == "relu":
            mean, log_var = F.relu(mean), F.relu(log_var)
        return mean, log_var


class Decoder(nn.Module):
    """N x latent_dim codes -> N x C x H x W images in [0, 1]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.dense = nn.Linear(config.latent_dim, config.flat_features)
        self.dense_bn = nn.BatchNorm1d(config.flat_features, eps=config.bn_eps, momentum=config.bn_momentum)
        widths = (config.channels[-1], *reversed(config.channels))
        self.stages = nn.Sequential(*(UpStage(widths[i], widths[i + 1], config) for i in range(len(config.channels))))
        k = config.kernel_size
        # Stride 1 'same' is symmetric in both frameworks for odd kernels.
        self.to_rgb = nn.Conv2d(widths[-1], config.image_channels, k, padding=k // 2)
        self.mirrored = config.padding == "tf_same"

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        c, b = self.config.channels[-1], self.config.bottom_size
        x = F.leaky_relu(self.dense_bn(self.dense(latents)), self.config.leaky_slope)  # N x (b*b*c)
        if self.config.flatten_order == "channels_last":
            x = x.view(-1, b, b, c).permute(0, 3, 1, 2)  # Keras's Reshape is channels-last
        else:
            x = x.view(-1, c, b, b)
        x = self.stages(mirror(x, self.mirrored))  # N x C_0 x H x W
        x = F.conv2d(x, mirror(self.to_rgb.weight, self.mirrored), self.to_rgb.bias, padding=self.to_rgb.padding)
        return torch.sigmoid(mirror(x, self.mirrored))


class FaceVAE(nn.Module):
    """Encoder + decoder. Sampling is a separate step; the trainer owns the loop."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(images)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents)

    @staticmethod
    def sample_latent(mean: torch.Tensor, log_var: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Reparameterisation: mean + exp(log_var / 2) * noise, noise ~ N(0, I)."""
        if noise is None:
            noise = torch.randn_like(mean)
        return mean + torch.exp(0.5 * log_var) * noise

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images -> (reconstruction, mean, log_var), decoding a sampled latent."""
        mean, log_var = self.encode(images)
        return self.decode(self.sample_latent(mean, log_var)), mean, log_var
