"""An inference-only copy of a Decoder, rewritten for speed on CPUs; same function.

Rewrites, each exact in real arithmetic:
- BatchNorm folded into the layer before it. In eval mode BatchNorm is a per-channel affine
  map, y = (x - mean) / sqrt(var + eps) * gamma + beta, so it multiplies into the weights and
  bias of the dense layer and of each transposed convolution: one pass less over every
  feature map (the 64 x 64 x 128 maps dominate).
- Like the Decoder, it computes in the decoder's working orientation (mirrored for TF-'same'
  models, see tf_same.py), so the stages are PyTorch's symmetric transposed convolutions.
- Channels-last tensors, which oneDNN's convolutions prefer.
- fp32 without autograd on a CPU: each transposed convolution runs as oneDNN's fused
  convolution + LeakyReLU (`torch.ops.mkldnn._convolution_transpose_pointwise`, the kernel
  torch.compile's CPU backend uses): the activation is applied while the output is still in
  cache instead of in a second pass over memory. Refinement differentiates through the
  decoder, so with autograd the same weights go through PyTorch's ordinary ops.
- The last stage and `to_rgb` depend on the precision (docs/benchmarks.md has the figures
  behind each choice):
  - fp32, `RGBAsMatmulTail`: the last stage's full-size map, then `to_rgb` as one matrix
    product over channels (channels-last pixels x C times C x (k*k*3) taps) and k*k shifted
    sums of 3-channel images: oneDNN's convolutions waste most of their vector lanes on
    3 output channels.
  - bf16, `PhaseSplitTail`: the last stage's four pixel phases, never assembling the
    full-size map, each read by a small convolution producing 12 phase channels of the
    image.

precision="bf16" also stores weights and activations in bfloat16 (float32 accumulation
inside oneDNN; the last layer's output is converted back to float32 before the sigmoid):
faster on CPUs with AVX512-BF16 or AMX, with pixels a few levels of 255 from the plain
decoder (benchmarks/synthesis.py prints how far). float32 equals the plain decoder to
float32 rounding; the pipeline picks bf16 where the CPU has native bf16 instructions (its
precision="auto").
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .tf_same import SameConv, conv_transpose_stride2, mirror
from .vae import Decoder, UpStage

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
    weight = conv.working_weight().detach() * scale[None, :, None, None]
    return weight, conv.bias.detach() * scale + shift


def _fused_ops_available() -> bool:
    """oneDNN's fused transposed convolution + activation is in this torch build."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_transpose_pointwise")


class FoldedUp(nn.Module):
    """A stride-2 UpStage with its BatchNorm folded in, and its LeakyReLU:
    N x C_in x H x W -> N x C_out x 2H x 2W. `fuse`: use oneDNN's fused op where it can."""

    def __init__(self, stage: UpStage, fuse: bool) -> None:
        super().__init__()
        weight, bias = _folded_stage(stage)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)
        self.padding, self.output_padding = stage.conv.padding[0], stage.conv.output_padding[0]
        self.slope = stage.slope
        self.fused = fuse and _fused_ops_available()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused and x.device.type == "cpu" and not (torch.is_grad_enabled() and x.requires_grad):
            pad, out_pad = [self.padding] * 2, [self.output_padding] * 2
            return torch.ops.mkldnn._convolution_transpose_pointwise(
                x, self.weight, self.bias, pad, out_pad, [2, 2], [1, 1], 1, "leaky_relu", [self.slope], "")
        # Refinement differentiates through it, hence the backward of conv_transpose_stride2.
        x = conv_transpose_stride2(x, self.weight, self.bias, self.padding, self.output_padding)
        return F.leaky_relu(x, self.slope)


class RGBAsMatmulTail(nn.Module):
    """The last UpStage, then `to_rgb` as a matrix product and shifted sums.

    to_rgb's output pixel Y reads feature pixels Y + t - k//2 (t = 0..k-1 on each axis), so
    with P = features (pixels x C, channels-last) @ W (C x (k*k*3): every tap's 3 colours),
    image[Y] = bias + sum over taps (ty, tx) of P[Y + t - k//2][ty, tx]. The matrix product
    is one GEMM over all pixels; the k*k sums move 3-channel images only.
    """

    def __init__(self, stage: UpStage, to_rgb: SameConv) -> None:
        super().__init__()
        self.up = FoldedUp(stage, fuse=True)
        rgb = to_rgb.working_weight().detach()  # 3 x C x k x k
        self.k = rgb.shape[-1]
        self.taps = nn.Parameter(rgb.permute(1, 2, 3, 0).reshape(rgb.shape[1], -1).contiguous(),  # C x (k*k*3)
                                 requires_grad=False)
        self.rgb_bias = nn.Parameter(to_rgb.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C_in x H x W (the last stage's input) -> N x 3 x 2H x 2W images in [0, 1]."""
        features = self.up(x).contiguous(memory_format=torch.channels_last)  # N x C x S x S
        n, c, size, _ = features.shape
        k, half = self.k, self.k // 2
        per_tap = (features.permute(0, 2, 3, 1).reshape(-1, c) @ self.taps).view(n, size, size, k, k, 3)
        image = per_tap.new_zeros(n, size + 2 * half, size + 2 * half, 3)  # N x S x S x 3, padded by k//2
        for ty in range(k):
            for tx in range(k):  # feature pixel r feeds image pixel r - t + k//2
                image[:, k - 1 - ty:k - 1 - ty + size, k - 1 - tx:k - 1 - tx + size] += per_tap[:, :, :, ty, tx]
        image = image[:, half:half + size, half:half + size] + self.rgb_bias
        return torch.sigmoid(image.permute(0, 3, 1, 2))


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
    the image, and one pixel shuffle of those 12 channels gives N x 3 x 2H x 2W: no pass over
    a full-size map.
    """

    def __init__(self, stage: UpStage, to_rgb: SameConv, dtype: torch.dtype) -> None:
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
        rgb = to_rgb.working_weight().detach()  # 3 x C x k x k
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
        # Fusion is measured on fp32 only (docs/benchmarks.md); bf16 keeps the separate activation.
        fuse = self.dtype == torch.float32
        self.ups = nn.ModuleList(FoldedUp(stage, fuse) for stage in decoder.stages[:-1])
        self.tail = (RGBAsMatmulTail(decoder.stages[-1], decoder.to_rgb) if self.dtype == torch.float32
                     else PhaseSplitTail(decoder.stages[-1], decoder.to_rgb, self.dtype))
        self.to(dtype=self.dtype, memory_format=torch.channels_last)
        self.eval().requires_grad_(False)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        c, b = self.config.channels[-1], self.config.bottom_size
        x = F.leaky_relu(self.dense(latents.to(self.dtype)), self.slope)  # N x (b*b*c)
        if self.config.flatten_order == "channels_last":
            x = x.view(-1, b, b, c).permute(0, 3, 1, 2)  # N x c x b x b, already channels-last in memory
        else:
            x = x.view(-1, c, b, b).contiguous(memory_format=torch.channels_last)
        x = mirror(x, self.mirrored)  # into the working orientation (tf_same.py)
        for up in self.ups:
            x = up(x)
        return mirror(self.tail(x), self.mirrored)  # N x 3 x S x S
