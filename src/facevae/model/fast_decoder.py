"""An inference-only copy of a Decoder, rewritten for speed on CPUs; same function.

Rewrites, each exact in real arithmetic:
- BatchNorm folded into the layer before it. In eval mode BatchNorm is a per-channel affine
  map, y = (x - mean) / sqrt(var + eps) * gamma + beta, so it multiplies into the weights and
  bias of the dense layer and of each transposed convolution: one pass less over every
  feature map (the 64 x 64 x 128 maps dominate).
- The last stage and `to_rgb` work on the four pixel phases of the largest feature map
  without assembling it (`PhaseSplitTail`), multiplying only the kernel taps that reach
  each phase.
- Like the Decoder, it computes in the decoder's working orientation (mirrored for TF-'same'
  models, see model.py), so the other stages are PyTorch's symmetric transposed
  convolutions, which oneDNN runs about twice as fast as the same stage written as a
  sub-pixel convolution.
- Channels-last tensors, which oneDNN's convolutions prefer.

precision="bf16" also stores weights and activations in bfloat16 (float32 accumulation
inside oneDNN; the last layer's output is converted back to float32 before the sigmoid).
On CPUs with AVX512-BF16 that is about twice as fast; pixels move by a few levels out of 255
(benchmarks/synthesis.py prints how much). float32 equals the plain decoder to about 1e-6;
the pipeline picks bf16 where the CPU has native bf16 instructions (its precision="auto").
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .vae import Decoder, UpStage, conv_transpose_stride2, mirror

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


def _folded_stage(stage: UpStage) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight C_in x C_out x k x k in the working orientation, bias C_out) of a stage's
    transposed convolution with its BatchNorm folded in."""
    conv = stage.conv
    if conv.stride != (2, 2) or conv.dilation != (1, 1) or conv.groups != 1:
        raise ValueError("the fast decoder handles stride-2, undilated, ungrouped transposed convolutions")
    scale, shift = _bn_scale_shift(stage.bn)
    weight = mirror(conv.weight.detach(), stage.mirrored) * scale[None, :, None, None]
    return weight, conv.bias.detach() * scale + shift


class FoldedUp(nn.Module):
    """A stride-2 UpStage's transposed convolution with its BatchNorm folded in."""

    def __init__(self, stage: UpStage) -> None:
        super().__init__()
        weight, bias = _folded_stage(stage)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)
        self.padding, self.output_padding = stage.conv.padding[0], stage.conv.output_padding[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C_in x H x W -> N x C_out x 2H x 2W (before the activation); refinement
        differentiates through it, hence the backward of conv_transpose_stride2."""
        return conv_transpose_stride2(x, self.weight, self.bias, self.padding, self.output_padding)


class PhaseSplitTail(nn.Module):
    """The last UpStage and `to_rgb`, computed without ever building the full-size feature map.

    The last stage's output (N x C x 2H x 2W, the largest tensor of the decoder) is kept as
    its four pixel phases, each N x C x H x W, computed by its own convolution with only the
    kernel taps that reach that phase. Along one axis, output y = 2m + p is the full
    transposed convolution at y + crop (crop: the padding), which sums input[i] * w[k] over
    2i + k = 2m + p + crop, i.e. input offsets d = (p + crop - k) / 2 for the taps k of
    matching parity.
    `to_rgb` (k x k, 'same') then reads the phases directly: output pixel Y = 2m + q reads
    feature rows Y + t - k//2, which lie in phase p = (q + t - k//2) mod 2 at row m + d, so
    each phase contributes through one small convolution to the 4 x 3 phase channels of
    the image, and one pixel shuffle of those 12 channels gives N x 3 x 2H x 2W. That skips
    one full pass over the big map.
    """

    def __init__(self, stage: UpStage, to_rgb: nn.Conv2d, dtype: torch.dtype) -> None:
        super().__init__()
        weight, bias = _folded_stage(stage)  # in x out x k x k
        crop, k = stage.conv.padding[0], weight.shape[-1]
        taps = {p: [((p + crop - t) // 2, t) for t in range(k) if (p + crop - t) % 2 == 0] for p in (0, 1)}
        self.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
        self.phase_weights = nn.ParameterList()
        self.phase_pads: list[tuple[int, int, int, int]] = []
        for py in (0, 1):
            for px in (0, 1):
                dys, dxs = [d for d, _ in taps[py]], [d for d, _ in taps[px]]
                kernel = weight.new_zeros(weight.shape[1], weight.shape[0], max(dys) - min(dys) + 1,
                                          max(dxs) - min(dxs) + 1)
                for dy, ty in taps[py]:
                    for dx, tx in taps[px]:
                        kernel[:, :, dy - min(dys), dx - min(dxs)] = weight[:, :, ty, tx].T
                self.phase_weights.append(nn.Parameter(kernel.to(dtype), requires_grad=False))
                self.phase_pads.append((-min(dxs), max(dxs), -min(dys), max(dys)))  # left, right, top, bottom
        rgb = mirror(to_rgb.weight.detach(), stage.mirrored)  # 3 x C x k x k
        k, half = rgb.shape[-1], rgb.shape[-1] // 2
        # (phase p, output phase q, tap t) -> input offset d = (q + t - half - p) / 2 when the parity matches
        reach = [(p, q, t, (q + t - half - p) // 2) for p in (0, 1) for q in (0, 1) for t in range(k)
                 if (q + t - half - p) % 2 == 0]
        self.rgb_pad = max(abs(d) for *_, d in reach)
        width = 2 * self.rgb_pad + 1
        self.rgb_weights = nn.ParameterList()
        for py in (0, 1):
            for px in (0, 1):
                kernel = rgb.new_zeros(rgb.shape[0], 2, 2, rgb.shape[1], width, width)  # (c, qy, qx) order
                for p_y, qy, ty, dy in reach:
                    for p_x, qx, tx, dx in reach:
                        if (p_y, p_x) == (py, px):
                            kernel[:, qy, qx, :, dy + self.rgb_pad, dx + self.rgb_pad] += rgb[:, :, ty, tx]
                self.rgb_weights.append(nn.Parameter(kernel.reshape(-1, rgb.shape[1], width, width).to(dtype),
                                                     requires_grad=False))
        self.rgb_bias = nn.Parameter(to_rgb.bias.detach().float().repeat_interleave(4)[:, None, None],
                                     requires_grad=False)
        self.slope = stage.slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C_in x H x W (the last stage's input) -> N x 3 x 2H x 2W images in [0, 1]."""
        rgb_phases = self.rgb_bias  # accumulates N x 12 x H x W in float32
        for weight, pads, rgb_weight in zip(self.phase_weights, self.phase_pads, self.rgb_weights):
            padded = F.pad(x, pads) if any(pads) else x
            phase = F.leaky_relu_(F.conv2d(padded, weight, self.bias), self.slope)  # N x C x H x W
            rgb_phases = rgb_phases + F.conv2d(phase, rgb_weight, padding=self.rgb_pad).float()
        return torch.sigmoid(F.pixel_shuffle(rgb_phases, 2))


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
        self.mirrored = decoder.mirrored
        self.ups = nn.ModuleList(FoldedUp(stage) for stage in decoder.stages[:-1])
        self.tail = PhaseSplitTail(decoder.stages[-1], decoder.to_rgb, self.dtype)
        self.to(dtype=self.dtype, memory_format=torch.channels_last)
        self.eval().requires_grad_(False)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        c, b = self.config.channels[-1], self.config.bottom_size
        x = F.leaky_relu(self.dense(latents.to(self.dtype)), self.slope)  # N x (b*b*c)
        if self.config.flatten_order == "channels_last":
            x = x.view(-1, b, b, c).permute(0, 3, 1, 2)  # N x c x b x b, already channels-last in memory
        else:
            x = x.view(-1, c, b, b).contiguous(memory_format=torch.channels_last)
        x = mirror(x, self.mirrored)  # into the working orientation (model.py)
        for up in self.ups:
            x = F.leaky_relu(up(x), self.slope)
        return mirror(self.tail(x), self.mirrored)  # N x 3 x S x S
