"""An inference-only copy of a Decoder, rewritten for speed on CPUs; same function.

Three rewrites, each exact in real arithmetic:
- BatchNorm folded into the layer before it. In eval mode BatchNorm is a per-channel affine
  map, y = (x - mean) / sqrt(var + eps) * gamma + beta, so it multiplies into the weights and
  bias of the dense layer and of each transposed convolution: one pass less over every
  feature map (the 64 x 64 x 128 maps dominate).
- Each stride-2 transposed convolution becomes a stride-1 convolution with 4 x C_out
  channels followed by a pixel shuffle ("sub-pixel convolution"). Output pixel (2m + p) of
  a transposed convolution only sees input pixels m + d for a few offsets d that depend on
  the phase p; gathering the taps of the four phases (p_y, p_x) into one small kernel
  gives an ordinary convolution, for which oneDNN has much faster kernels (its transposed
  convolutions are slow, most of all in bfloat16). TensorFlow's 'same' crop and PyTorch's
  symmetric padding are both handled by where the offsets start.
- Channels-last tensors, which oneDNN's convolutions prefer.

precision="bf16" also stores weights and activations in bfloat16 (float32 accumulation
inside oneDNN; the last layer's output is converted back to float32 before the sigmoid).
On CPUs with AVX512-BF16 that is about twice as fast; pixels move by a few levels out of 255
(benchmarks/synthesis.py prints how much). float32 is the default: it equals the plain
decoder to about 1e-6.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .model import Decoder, UpStage

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _bn_scale_shift(bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with bn(x) == x * scale + shift in eval mode; both of size C."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias.detach() - bn.running_mean * scale


def _folded_linear(linear: nn.Linear, bn: nn.BatchNorm1d) -> nn.Linear:
    scale, shift = _bn_scale_shift(bn)
    folded = copy.deepcopy(linear)
    folded.weight.data = linear.weight.detach() * scale[:, None]  # out x in
    folded.bias.data = linear.bias.detach() * scale + shift
    return folded


class SubPixelUp(nn.Module):
    """A stride-2 UpStage's transposed convolution (BatchNorm folded in) as conv + pixel shuffle.

    Along one axis, output y = 2m + p of the cropped transposed convolution is the full
    output at y + crop, which sums input[i] * w[k] over 2i + k = 2m + p + crop, i.e. input
    offsets d = (p + crop - k) / 2 for the kernel taps k of matching parity. All offsets of
    both phases lie in [lo, hi]; padding the input by (-lo, hi) and convolving with a
    (hi - lo + 1)-tap kernel per phase gives every output pixel of that phase.
    """

    def __init__(self, stage: UpStage) -> None:
        super().__init__()
        conv = stage.conv
        if conv.stride != (2, 2) or conv.dilation != (1, 1) or conv.groups != 1:
            raise ValueError("SubPixelUp handles stride-2, undilated, ungrouped transposed convolutions")
        scale, shift = _bn_scale_shift(stage.bn)
        weight = conv.weight.detach() * scale[None, :, None, None]  # in x out x k x k
        bias = conv.bias.detach() * scale + shift
        k = weight.shape[-1]
        crop = stage.crop_start if stage.tf_same else conv.padding[0]
        taps = {p: [((p + crop - t) // 2, t) for t in range(k) if (p + crop - t) % 2 == 0] for p in (0, 1)}
        offsets = [d for phase in taps.values() for d, _ in phase]
        lo, hi = min(offsets), max(offsets)
        width = hi - lo + 1
        c_in, c_out = weight.shape[0], weight.shape[1]
        kernel = weight.new_zeros(c_out, 2, 2, c_in, width, width)  # pixel_shuffle wants (c, py, px)
        for py in (0, 1):
            for px in (0, 1):
                for dy, ty in taps[py]:
                    for dx, tx in taps[px]:
                        kernel[:, py, px, :, dy - lo, dx - lo] = weight[:, :, ty, tx].T
        self.weight = nn.Parameter(kernel.reshape(4 * c_out, c_in, width, width), requires_grad=False)
        self.bias = nn.Parameter(bias.repeat_interleave(4), requires_grad=False)
        self.pads = (-lo, hi, -lo, hi)  # left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C_in x H x W -> N x C_out x 2H x 2W (before the activation)."""
        return F.pixel_shuffle(F.conv2d(F.pad(x, self.pads), self.weight, self.bias), 2)


class FastDecoder(nn.Module):
    """Same function as `decoder` in eval mode: latents N x D -> images N x 3 x H x W in [0, 1]."""

    def __init__(self, decoder: Decoder, precision: str = "fp32") -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.config = decoder.config
        self.slope = decoder.config.leaky_slope
        self.dtype = PRECISIONS[precision]
        self.dense = _folded_linear(decoder.dense, decoder.dense_bn)
        self.ups = nn.ModuleList(SubPixelUp(stage) for stage in decoder.stages)
        self.to_rgb = copy.deepcopy(decoder.to_rgb)
        self.to(dtype=self.dtype, memory_format=torch.channels_last)
        self.eval().requires_grad_(False)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        c, b = self.config.channels[-1], self.config.bottom_size
        x = F.leaky_relu(self.dense(latents.to(self.dtype)), self.slope)  # N x (b*b*c)
        if self.config.flatten_order == "channels_last":
            x = x.view(-1, b, b, c).permute(0, 3, 1, 2)  # N x c x b x b, already channels-last in memory
        else:
            x = x.view(-1, c, b, b).contiguous(memory_format=torch.channels_last)
        for up in self.ups:
            x = F.leaky_relu(up(x), self.slope)
        return torch.sigmoid(self.to_rgb(x).float())
