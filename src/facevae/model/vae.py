"""The convolutional VAE: encoder, decoder and the pair, built from a ModelConfig alone.

Images are float tensors in [0, 1], N x C x H x W. Latent codes are N x latent_dim.
With the "original" preset this is the original Keras model layer for layer, including
TensorFlow's asymmetric 'same' padding and its channels-last flatten order, so its
weights load unchanged (see facevae.interop.keras). How the padding is reproduced: tf_same.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .tf_same import DownConv, SameConv, UpConv, mirror


class DownStage(nn.Module):
    """Conv (stride 2) -> BatchNorm -> LeakyReLU: halves H and W (mirrored maps when tf_same)."""

    def __init__(self, in_channels: int, out_channels: int, config: ModelConfig) -> None:
        super().__init__()
        self.conv = DownConv(in_channels, out_channels, config.kernel_size, config.padding == "tf_same")
        self.bn = nn.BatchNorm2d(out_channels, eps=config.bn_eps, momentum=config.bn_momentum)
        self.slope = config.leaky_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C_in x H x W -> N x C_out x H/2 x W/2."""
        # In place: batch norm's backward needs its input, not its output, so one copy less.
        return F.leaky_relu(self.bn(self.conv(x)), self.slope, inplace=True)


class UpStage(nn.Module):
    """Transposed conv (stride 2) -> BatchNorm -> LeakyReLU: doubles H and W (mirrored maps when tf_same)."""

    def __init__(self, in_channels: int, out_channels: int, config: ModelConfig) -> None:
        super().__init__()
        self.conv = UpConv(in_channels, out_channels, config.kernel_size, config.padding == "tf_same")
        self.bn = nn.BatchNorm2d(out_channels, eps=config.bn_eps, momentum=config.bn_momentum)
        self.slope = config.leaky_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C_in x H x W -> N x C_out x 2H x 2W."""
        return F.leaky_relu(self.bn(self.conv(x)), self.slope, inplace=True)  # in place: see DownStage


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
        self.mirrored = config.padding == "tf_same"
        self.to_rgb = SameConv(widths[-1], config.image_channels, config.kernel_size, self.mirrored)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        c, b = self.config.channels[-1], self.config.bottom_size
        x = F.leaky_relu(self.dense_bn(self.dense(latents)), self.config.leaky_slope)  # N x (b*b*c)
        if self.config.flatten_order == "channels_last":
            x = x.view(-1, b, b, c).permute(0, 3, 1, 2)  # Keras's Reshape is channels-last
        else:
            x = x.view(-1, c, b, b)
        x = self.stages(mirror(x, self.mirrored))  # N x C_0 x H x W, in the working orientation
        return torch.sigmoid(mirror(self.to_rgb(x), self.mirrored))


def init_like_keras(module: nn.Module) -> nn.Module:
    """Re-initialise every convolution, transposed convolution and dense layer of `module` as
    Keras does by default: glorot_uniform kernels, U(-a, a) with a = sqrt(6 / (fan_in + fan_out)),
    and zero biases. Batch norm already starts as in Keras (scale 1, shift 0). Returns `module`.

    PyTorch's defaults draw kernels about half as wide (kaiming_uniform with a = sqrt(5)) and
    random biases. xavier_uniform_ is glorot_uniform for every layer here: for a transposed
    convolution PyTorch and Keras swap fan_in and fan_out, and the bound only uses their sum."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.xavier_uniform_(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
    return module


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
