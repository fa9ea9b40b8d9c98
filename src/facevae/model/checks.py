"""Checks a loader makes before it trusts a file: sizes before allocating, values after reading.

    check_dimensions(config_section, "bundle/config.json model", BundleError)
    check_finite(state_dict, weights_file, BundleError)

Shared by bundles (model/bundle.py) and classifier folders (evaluation/classifier.py): a
number such as image_size 2**40 or channels [6000, 6000, 6000, 6000] is refused with a
message before any module is built, and a weight or attribute vector holding NaN or
infinity is refused instead of drawing black faces.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import UserError
from ..limits import MAX_IMAGE_SIZE, MAX_LAYER_WIDTH

# Config keys holding sizes, and the most each may be (far above any face model's).
# The model's size as a whole is checked afterwards by counting its parameters on the meta device.
DIMENSION_LIMITS = {"image_size": MAX_IMAGE_SIZE, "crop_size": 100 * MAX_IMAGE_SIZE, "latent_dim": MAX_LAYER_WIDTH,
                    "channels": MAX_LAYER_WIDTH, "image_channels": 4, "kernel_size": 15}


def check_dimensions(section: Any, where: str, error: type[UserError] = UserError) -> None:
    """Refuse a size in a config section (dict) above DIMENSION_LIMITS; other keys and types are
    left to the config's own checks."""
    if not isinstance(section, dict):
        return
    for key, limit in DIMENSION_LIMITS.items():
        values = section.get(key)
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not abs(value) <= limit:
                raise error(f"{where}: {key} {_short(value)} is beyond the {limit:,} facevae accepts; the file is "
                            f"damaged or not meant for facevae")


def _short(value: float) -> str:
    """A number for a message: 2**1100 is shown as about 10^331, not with 332 digits."""
    text = str(value)
    return text if len(text) <= 20 else f"about 10^{int(math.log10(abs(value)))}"


def check_finite(tensors: dict[str, torch.Tensor], file: Any, error: type[UserError] = UserError) -> None:
    """Refuse NaN or infinite values in any floating-point tensor read from `file`."""
    bad = [name for name, tensor in tensors.items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise error(f"{file} holds NaN or infinite values (in {shown}); the weights are damaged or came from a "
                    f"diverged training run: use an earlier checkpoint or copy the file again")


def parameter_count(module_class: type[torch.nn.Module], *args: Any) -> int:
    """Parameters and buffers of module_class(*args), built on the meta device: nothing is allocated."""
    with torch.device("meta"):
        return sum(math.prod(tensor.shape) for tensor in module_class(*args).state_dict().values())
