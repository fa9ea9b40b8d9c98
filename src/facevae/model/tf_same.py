"""TensorFlow's 'same' padding for the VAE's convolutions, as modules that own their weights.

TensorFlow's 'same' padding for stride 2 on an even size pads k - 2 pixels in total and puts
the odd one after: (before, after) = ((k - 3) / 2, (k - 1) / 2) for odd k, (0, 1) for k = 3,
where PyTorch's symmetric padding = k // 2 gives (1, 1) and shifts every output by one.
With both spatial axes reversed, TF's padding becomes ((k - 1) / 2, (k - 3) / 2): PyTorch's
symmetric k // 2 with reversed kernels (the extra pixel at the end is never reached by a
stride-2 window). So "tf_same" models compute on mirrored feature maps: Encoder and Decoder
reverse the axes once on the way in and once on the way out (`mirror`), and each convolution
here applies its kernel reversed (`working_weight`), running PyTorch's own symmetric
convolution. That is the same arithmetic as padding explicitly and cropping the full
transposed convolution, without the padded copies and odd-sized outputs that take oneDNN's
slow paths (tests/model/test_vae.py checks both against each other). With mirrored=False
(the "symmetric" models) they are PyTorch's ordinary convolutions.

The modules subclass nn.Conv2d / nn.ConvTranspose2d, so their parameters keep the names and
shapes (`weight`: the kernel in the stored orientation, `bias`) that bundles, checkpoints and
the Keras/seed converters read and write.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mirror(tensor: torch.Tensor, mirrored: bool) -> torch.Tensor:
    """tensor (... x H x W) with both spatial axes reversed when `mirrored`: feature maps into
    and out of the working orientation, and kernels as they apply there."""
    return tensor.flip(-2, -1) if mirrored else tensor


class _TransposedConv(torch.autograd.Function):
    """conv_transpose2d (stride 2) whose backward is the two ordinary convolutions it equals.

    The input gradient of a transposed convolution is the strided convolution with the same
    weight, and its weight gradient is that convolution's weight gradient with x as the
    output gradient. PyTorch's own CPU backward gets the same numbers (bit for bit in fp32)
    but was slower in bf16 on the largest stage when this was written.
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


class DownConv(nn.Conv2d):
    """k x k convolution, stride 2, 'same' padding: N x C_in x H x W -> N x C_out x H/2 x W/2,
    on mirrored maps when `mirrored` (TF 'same'), else PyTorch's symmetric padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mirrored: bool) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=2, padding=kernel_size // 2)
        self.mirrored = mirrored

    def working_weight(self) -> torch.Tensor:
        """The kernel as it applies to maps in the working orientation: C_out x C_in x k x k."""
        return mirror(self.weight, self.mirrored)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.working_weight(), self.bias, stride=2, padding=self.padding)


class UpConv(nn.ConvTranspose2d):
    """k x k transposed convolution, stride 2, 'same' (odd k): N x C_in x H x W -> N x C_out x
    2H x 2W, on mirrored maps when `mirrored` (TF 'same'), with the faster backward."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mirrored: bool) -> None:
        # Output size exactly 2H: (H - 1) * 2 - 2 * (k // 2) + k + 1 for odd k.
        super().__init__(in_channels, out_channels, kernel_size, stride=2, padding=kernel_size // 2, output_padding=1)
        self.mirrored = mirrored

    def working_weight(self) -> torch.Tensor:
        """The kernel as it applies to maps in the working orientation: C_in x C_out x k x k."""
        return mirror(self.weight, self.mirrored)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is not None:
            raise ValueError("UpConv's output size is always twice its input's")
        return conv_transpose_stride2(x, self.working_weight(), self.bias, self.padding[0], self.output_padding[0])


class SameConv(nn.Conv2d):
    """k x k convolution, stride 1, 'same' (odd k, symmetric in both frameworks): N x C_in x
    H x W -> N x C_out x H x W, with the kernel reversed on mirrored maps."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mirrored: bool) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.mirrored = mirrored

    def working_weight(self) -> torch.Tensor:
        """The kernel as it applies to maps in the working orientation: C_out x C_in x k x k."""
        return mirror(self.weight, self.mirrored)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.working_weight(), self.bias, padding=self.padding)
