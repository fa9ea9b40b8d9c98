"""Save a tuned photo (framed image, code, decoder delta) and load it again without tuning.

    photo = pipe.encode("me.jpg")                 # tuned (facevae.inference.tuning)
    save_tuned_photo(pipe, photo, "me.facevae-photo.safetensors")
    photo = load_tuned_photo(pipe, "me.facevae-photo.safetensors")
    pipe.edit(photo, {"Smiling": 1.5})

One safetensors file: `images` (N x 3 x S x S), `codes` (N x D) and, per photo i, `delta.i.NAME`:
the tuned decoder's weights minus the pipeline's own decoder's, tensor by tensor, in float32 (in the form
the pipeline draws with, so a file belongs to one model and one precision). The metadata holds
the format, the notes, how the decoder was tuned and a fingerprint of the model's decoder;
loading with another model or precision is refused with a message.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from ..errors import UserError
from ..imaging import write_atomic
from .encoded import EncodedPhoto

if TYPE_CHECKING:
    from .pipeline import FacePipeline

PHOTO_FORMAT = "facevae-tuned-photo"
PHOTO_VERSION = 1


def _dense(tensor: torch.Tensor) -> torch.Tensor:
    """A CPU copy with plain row-major strides (FastDecoder keeps channels-last weights)."""
    return tensor.detach().cpu().flatten().clone().view(tensor.shape)


def decoder_fingerprint(decoder: torch.nn.Module) -> str:
    """SHA-256 over the names, dtypes and bytes of a decoder's tensors (first 16 hex digits)."""
    digest = hashlib.sha256()
    for name, tensor in decoder.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(_dense(tensor).flatten().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _photo_decoders(photo: EncodedPhoto) -> list[torch.nn.Module]:
    if photo.decoder is None:
        raise UserError("this photo has no tuned decoder to save; encode it with tuning (tune_steps > 0), "
                        "or save its codes with SynthesisResult.save_latents")
    return list(photo.decoder) if isinstance(photo.decoder, torch.nn.ModuleList) else [photo.decoder]


def save_tuned_photo(pipeline: FacePipeline, photo: EncodedPhoto, path: str | Path) -> Path:
    """Write `photo` (encoded and tuned by `pipeline`) to a .safetensors file, atomically."""
    path = Path(path)
    if not path.name.endswith(".safetensors"):
        raise UserError(f"{path}: a tuned photo is saved as a .safetensors file; use a name ending in .safetensors")
    base = pipeline.decoder.state_dict()
    tensors = {"images": _dense(photo.images.float()), "codes": _dense(photo.codes.float())}
    for index, decoder in enumerate(_photo_decoders(photo)):
        for name, value in decoder.state_dict().items():
            tensors[f"delta.{index}.{name}"] = _dense(value.float() - base[name].float())  # exact for bf16 too
    metadata = {"format": PHOTO_FORMAT, "version": str(PHOTO_VERSION), "notes": json.dumps(photo.notes),
                "decoder_settings": json.dumps(dict(photo.decoder_settings)),
                "model": decoder_fingerprint(pipeline.decoder)}
    return write_atomic(path, safetensors_save(tensors, metadata=metadata))


def load_tuned_photo(pipeline: FacePipeline, path: str | Path) -> EncodedPhoto:
    """A photo saved by save_tuned_photo, with its tuned decoder(s) rebuilt on `pipeline`'s."""
    path = Path(path)
    try:
        data = path.read_bytes()
        tensors = safetensors_load(data)
        metadata = json.loads(data[8:8 + int.from_bytes(data[:8], "little")]).get("__metadata__", {})
    except (OSError, SafetensorError, ValueError) as error:
        raise UserError(f"{path} is not a readable tuned photo ({error})") from None
    if metadata.get("format") != PHOTO_FORMAT or metadata.get("version") != str(PHOTO_VERSION):
        raise UserError(f"{path} is not a facevae tuned photo (version {PHOTO_VERSION})")
    if metadata.get("model") != decoder_fingerprint(pipeline.decoder):
        raise UserError(f"{path} was tuned on another model (or precision) than this one; load it with the model "
                        f"it was made with, or encode the photo again")
    device = pipeline.model.device
    decoders = []
    for index in range(len(tensors["codes"])):
        decoder = copy.deepcopy(pipeline.decoder)
        base = decoder.state_dict()
        decoder.load_state_dict({name: (value.float() + tensors[f"delta.{index}.{name}"].to(device)).to(value.dtype)
                                 for name, value in base.items()})
        decoders.append(decoder.eval())
    photo = EncodedPhoto(tensors["images"].to(device), tensors["codes"].to(device), json.loads(metadata["notes"]))
    return photo.with_decoder(decoders[0] if len(decoders) == 1 else torch.nn.ModuleList(decoders),
                              **json.loads(metadata["decoder_settings"]))
