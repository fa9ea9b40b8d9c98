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

from .config import MODEL_PRESETS, ModelConfig


def tf_same_pads(kernel_size: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's 'same' for stride 2 on an even-sized input.

    TF pads max(k - 2, 0) in total and puts the odd pixel after: for k=3 that is (0, 1),
    where PyTorch's symmetric padding=1 would give (1, 1) and shift every output by one.
    """
    total = max(kernel_size - 2, 0)
    return total // 2, total - total // 2


class DownStage(nn.Module):
    """Conv (stride 2) -> BatchNorm -> LeakyReLU: halves H and W."""

    def __init__(self, in_channels: int, out_channels: int, config: ModelConfig) -> None:
        super().__init__()
        self.tf_same = config.padding == "tf_same"
        padding = 0 if self.tf_same else config.kernel_size // 2
        self.pads = tf_same_pads(config.kernel_size)
        self.conv = nn.Conv2d(in_channels, out_channels, config.kernel_size, stride=2, padding=padding)
        self.bn = nn.BatchNorm2d(out_channels, eps=config.bn_eps, momentum=config.bn_momentum)
        self.slope = config.leaky_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_same:
            before, after = self.pads
            x = F.pad(x, (before, after, before, after))
        return F.leaky_relu(self.bn(self.conv(x)), self.slope)


class UpStage(nn.Module):
    """Transposed conv (stride 2) -> BatchNorm -> LeakyReLU: doubles H and W."""

    def __init__(self, in_channels: int, out_channels: int, config: ModelConfig) -> None:
        super().__init__()
        self.tf_same = config.padding == "tf_same"
        k = config.kernel_size
        if self.tf_same:
            # Full transposed conv (2H + k - 2 outputs), then keep TF's window of 2H.
            self.conv = nn.ConvTranspose2d(in_channels, out_channels, k, stride=2, padding=0)
        else:
            self.conv = nn.ConvTranspose2d(in_channels, out_channels, k, stride=2, padding=k // 2, output_padding=1)
        self.crop_start = tf_same_pads(k)[0]
        self.bn = nn.BatchNorm2d(out_channels, eps=config.bn_eps, momentum=config.bn_momentum)
        self.slope = config.leaky_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_size = x.shape[-1] * 2
        x = self.conv(x)
        if self.tf_same:
            s = self.crop_start
            window = x[..., s : s + out_size, s : s + out_size]
            if self.training:
                # Training batch norm on the strided slice takes PyTorch's slow CPU path (whole
                # steps ran 1.65x slower); in eval mode the slice is faster than a copy.
                channels_last = x.is_contiguous(memory_format=torch.channels_last)
                window = window.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            x = window
        return F.leaky_relu(self.bn(x), self.slope)


class Encoder(nn.Module):
    """N x C x H x W images in [0, 1] -> (mean, log_var), each N x latent_dim."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        widths = (config.image_channels, *config.channels)
        self.stages = nn.Sequential(*(DownStage(widths[i], widths[i + 1], config) for i in range(len(config.channels))))
        self.mean = nn.Linear(config.flat_features, config.latent_dim)
        self.log_var = nn.Linear(config.flat_features, config.latent_dim)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.stages(images)  # N x C_last x b x b
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

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        c, b = self.config.channels[-1], self.config.bottom_size
        x = F.leaky_relu(self.dense_bn(self.dense(latents)), self.config.leaky_slope)  # N x (b*b*c)
        if self.config.flatten_order == "channels_last":
            x = x.view(-1, b, b, c).permute(0, 3, 1, 2)  # Keras's Reshape is channels-last
        else:
            x = x.view(-1, c, b, b)
        return torch.sigmoid(self.to_rgb(self.stages(x)))


class FaceVAE(nn.Module):
    """Encoder + decoder. Sampling is a separate step; the trainer owns the loop."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    @classmethod
    def from_preset(cls, name: str) -> "FaceVAE":
        return cls(MODEL_PRESETS[name])

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
