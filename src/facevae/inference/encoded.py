"""EncodedPhoto: photos framed for the model and their latent codes, the input of every edit.

`FacePipeline.encode(photo)` makes one; `FacePipeline.edit` and `FacePipeline.reconstruct`
take one (or a photo, which they encode first). Front ends that edit the same photo many times
(the GUI's sliders) keep the EncodedPhoto and pay for the encoding once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch


@dataclass(frozen=True)
class EncodedPhoto:
    """N >= 1 photos as the model sees them and their codes (one photo: N = 1).

    images: N x 3 x S x S model input in [0, 1] (each face found and framed like CelebA's
        aligned images, or the whole picture), on the pipeline's device.
    codes: N x D latent codes, encoder mean (optionally refined by optimisation).
    notes: what framing found, for the user ("2 faces found; used the largest").
    decoder: None draws the codes with the pipeline's decoder; a module here (e.g. a decoder
        tuned to these photos) is used instead by `edit` and `reconstruct`.
    decoder_settings: how `decoder` was made (e.g. tuning steps), for display and provenance.
    """

    images: torch.Tensor
    codes: torch.Tensor
    notes: list[str] = field(default_factory=list)
    decoder: torch.nn.Module | None = None
    decoder_settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.codes.ndim != 2 or len(self.images) != len(self.codes):
            raise ValueError(f"an EncodedPhoto needs N x 3 x S x S images and N x D codes; got "
                             f"{tuple(self.images.shape)} and {tuple(self.codes.shape)}")

    def __len__(self) -> int:
        return len(self.codes)

    def with_decoder(self, decoder: torch.nn.Module, **settings: Any) -> "EncodedPhoto":
        """The same photos and codes, drawn with `decoder` from now on (settings: how it was made)."""
        return replace(self, decoder=decoder, decoder_settings=dict(settings))
