"""FacePipeline: the one inference facade that the CLI, the GUI and the REST API call.

    pipe = FacePipeline.load("celeba64-original")
    result = pipe.generate(n=70, seed=1, attributes={"Smiling": 1.5})
    result.save("faces.png")            # a grid; a folder name writes one PNG per face
    result.save_latents("faces.npy")    # `pipe.decode(np.load("faces.npy"))` gives the same faces

Every method returns a SynthesisResult: the latent codes, the faces they decode to (row for
row), and the grid to show (the faces, with the input photos beside them where there are any). Decoding goes through
FastDecoder (BatchNorm folded, phase-split last stage, channels-last). precision="auto"
uses bfloat16 where the hardware has bfloat16 arithmetic (facevae.runtime.pick_runtime: CPUs
with AVX512-BF16/AMX, bf16-capable GPUs; pixels differ slightly from the plain float32
decoder, docs/benchmarks.md measures by how much) and float32 elsewhere; "fp32" equals the
plain decoder to float32 rounding; `fast=False` uses the plain decoder itself.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .. import imaging
from ..edit_choices import DEFAULT_STRENGTHS, strength_label
from ..errors import UserError
from ..model.bundle import FaceModel
from ..model.fast_decoder import FastDecoder
from ..model.vae import Decoder
from ..runtime import pick_runtime, resolve_device
from .encoded import EncodedPhoto
from .guided import apply_edits, prepare_edits
from .interpolation import lerp, slerp
from .result import SynthesisResult

MAX_FACES = 1024  # per call: a grid larger than this is not something anyone looks at
GRID_COLUMNS = 10


class UnknownAttributeError(UserError):
    """An attribute name the model has no vector for."""


class LatentShapeError(UserError):
    """Latent codes whose size does not match the model."""


class FacePipeline:
    """Generate, reconstruct, edit and morph faces with one loaded model."""

    def __init__(self, model: FaceModel, fast: bool = True, precision: str = "auto") -> None:
        self.model = model
        # the device is the model's; the precision follows facevae.runtime's rule (plain decoder: fp32)
        self.runtime = pick_runtime(model.device, precision if fast else "fp32")
        self.precision = self.runtime.precision
        self._fast = fast
        self.decoder: torch.nn.Module = (FastDecoder(model.decoder, self.precision).to(model.device) if fast
                                         else model.decoder)
        self.decoder.eval()

    @classmethod
    def load(cls, name_or_path: str | Path | None = None, device: str = "auto", fast: bool = True,
             precision: str = "auto") -> "FacePipeline":
        """A registry name (default celeba64-original), a bundle folder or a training run, on
        `device` ("auto": a GPU if there is one, else the CPU; see facevae.runtime)."""
        from ..hub.registry import DEFAULT_MODEL
        from ..interop.loading import load

        return cls(load(name_or_path or DEFAULT_MODEL, device=resolve_device(device)), fast=fast, precision=precision)

    # --- latents ---------------------------------------------------------------------

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    @property
    def attribute_names(self) -> list[str]:
        return list(self.model.attributes)

    def resolve_attributes(self, strengths: Mapping[str, float] | None, keep: Sequence[str] = (),
                           keep_mode: str = "auto") -> torch.Tensor:
        """Sum of strength x vector over the given attributes: a D vector (zeros for none).

        keep: attributes to leave unchanged; each edited vector is made orthogonal to the kept
        ones (keep_mode "orthogonal"), also to their correlated group ("group"), or corrected in
        decoded pixels ("decoded"); "auto" is "group" where that leaves enough of every edit,
        else "orthogonal". See facevae.inference.directions.
        """
        return self._offsets([dict(strengths or {})], keep, keep_mode)[0]

    def _offsets(self, strength_sets: Sequence[Mapping[str, float]], keep: Sequence[str],
                 keep_mode: str) -> torch.Tensor:
        """resolve_attributes for several sets of strengths with the same keep: S x D. The
        "decoded" mode's pixel signatures of the kept attributes are measured once for all."""
        from .directions import PixelSignatures, check_keep, conditional_offset

        for strengths in strength_sets:
            check_keep(strengths, keep, keep_mode)
            for name in [*strengths, *keep]:
                if name not in self.model.attributes:
                    raise self._unknown_attribute(name)
        vectors = self.model.attributes
        signatures = None
        if keep_mode == "decoded" and keep and any(any(float(s) for s in st.values()) for st in strength_sets):
            signatures = PixelSignatures([vectors[name] for name in dict.fromkeys(keep)], self.decode_tensor)
        zero = torch.zeros(self.latent_dim, device=self.model.device)
        return torch.stack([conditional_offset(vectors, strengths, keep, keep_mode, signatures=signatures)
                            if strengths else zero for strengths in strength_sets])

    def _unknown_attribute(self, name: str) -> UnknownAttributeError:
        valid = self.attribute_names
        if not valid:
            return UnknownAttributeError(
                f"This model has no attribute vectors, so '{name}' cannot be applied. Compute them from a "
                f"labelled dataset (`facevae attributes`, docs/usage.md)")
        folded = {v.lower(): v for v in valid}
        close = difflib.get_close_matches(name.lower(), list(folded), n=1, cutoff=0.5)
        hint = f" Did you mean '{folded[close[0]]}'?" if close else ""
        return UnknownAttributeError(f"Unknown attribute '{name}'.{hint} Valid names: {', '.join(valid)}")

    def sample_latents(self, n: int, seed: int = 0, temperature: float = 1.0) -> torch.Tensor:
        """n codes from the prior N(0, temperature^2 I), the same for the same seed: n x D."""
        self._check_count(n)
        if not (temperature >= 0 and math.isfinite(temperature)):
            raise UserError(f"temperature must be a finite number >= 0, got {temperature}")
        generator = torch.Generator().manual_seed(int(seed))
        return (torch.randn(n, self.latent_dim, generator=generator) * temperature).to(self.model.device)

    def as_latents(self, latents: Any) -> torch.Tensor:
        """A D vector or N x D array/tensor -> N x D float32 tensor, checked against the model."""
        tensor = torch.as_tensor(np.asarray(latents, dtype=np.float32) if not torch.is_tensor(latents) else latents)
        tensor = tensor.float().to(self.model.device)
        if tensor.ndim == 1:
            tensor = tensor[None]
        if tensor.ndim != 2 or tensor.shape[1] != self.latent_dim:
            raise LatentShapeError(f"latent codes must be N x {self.latent_dim} for this model; "
                                   f"got shape {tuple(tensor.shape)}")
        if not torch.isfinite(tensor).all():
            raise LatentShapeError("latent codes contain NaN or infinite values")
        return tensor

    def _check_count(self, n: int) -> None:
        if not 1 <= n <= MAX_FACES:
            raise UserError(f"the number of faces must be between 1 and {MAX_FACES}, got {n}")

    # --- decoding and encoding -------------------------------------------------------

    def decode_tensor(self, latents: torch.Tensor) -> torch.Tensor:
        """N x D codes -> N x 3 x S x S images in [0, 1]: the one way codes are drawn for inference."""
        return self._draw(latents, self.decoder)

    @torch.inference_mode()
    def _draw(self, latents: torch.Tensor, decoder: torch.nn.Module) -> torch.Tensor:
        """decode_tensor with a given decoder (an EncodedPhoto's own), in the device's decode batches."""
        parts = [decoder(chunk) for chunk in latents.split(self.runtime.decode_batch)]
        return torch.cat(parts).contiguous()

    def _draw_encoded(self, photo: EncodedPhoto, latents: torch.Tensor) -> torch.Tensor:
        """Codes drawn as the photo's own decoder draws them (a tuned one), else as decode_tensor.
        A ModuleList holds one decoder per photo: latents come photo by photo, as many for each.
        Edits of a tuned photo are redrawn where they act (facevae.inference.tuning.redrawn)."""
        if photo.decoder is None:
            return self.decode_tensor(latents)
        from .tuning import redrawn

        decoders = list(photo.decoder) if isinstance(photo.decoder, torch.nn.ModuleList) else [photo.decoder]
        change = float(photo.decoder_settings.get("redraw_change", 0.0))
        faces = []
        for codes, decoder, pivot in zip(latents.reshape(len(decoders), -1, self.latent_dim), decoders, photo.codes):
            if change > 0 and not torch.equal(codes, pivot.expand_as(codes)):
                with_pivot = torch.cat([pivot[None], codes])  # (1 + K) x D
                faces.append(redrawn(self._draw(with_pivot, decoder), self._draw(with_pivot, self.decoder), change))
            else:
                faces.append(self._draw(codes, decoder))  # K x 3 x S x S
        return torch.cat(faces)

    def encode(self, photos: Any, refine_steps: int = 0, whole_image: bool = False, progress: bool = False,
               tune_steps: int | None = None) -> EncodedPhoto:
        """Photos -> EncodedPhoto (framed model input, codes, notes), the input of edit and reconstruct.

        photos: a path, bytes or PIL image, a list of these (each face found and framed like
        CelebA's aligned images; whole_image=True uses the pictures as they are), or an
        N x 3 x S x S tensor in [0, 1], model input already. Codes are the encoder's mean,
        refined by `refine_steps` optimisation steps (decoder-only models always optimise;
        see facevae.inference.inversion). Photos then get a decoder copy tuned to each for
        `tune_steps` steps (None: DEFAULT_TUNING's for photos, 0 for tensors; 0: none; see
        facevae.inference.tuning), which edit and reconstruct draw them with. An EncodedPhoto is
        returned as it is, unless it has no decoder of its own and `tune_steps` asks for one.
        """
        from .inversion import invert
        from .tuning import tune_photos, tuning_steps

        if isinstance(photos, EncodedPhoto):
            encoded, steps = photos, 0 if photos.decoder is not None else (tune_steps or 0)
        else:
            images, notes = self._frame(photos, whole_image)
            self._check_count(len(images))
            codes = invert(self.model, images, refine_steps=refine_steps, decoder=self.decoder, progress=progress)
            encoded = EncodedPhoto(images, codes, notes)
            steps = 0 if torch.is_tensor(photos) and tune_steps is None else tuning_steps(tune_steps)
        if not steps:
            return encoded
        return tune_photos(self.model, encoded, steps, self._drawing, self.decoder, progress=progress,
                           autocast=self.runtime.autocast_dtype)

    def _drawing(self, decoder: Decoder) -> torch.nn.Module:
        """The module that draws faces with `decoder`'s weights, rewritten like the pipeline's own."""
        return FastDecoder(decoder, self.precision).to(self.model.device).eval() if self._fast else decoder

    def _frame(self, images: Any, whole_image: bool = False) -> tuple[torch.Tensor, list[str]]:
        """Photos -> (N x 3 x S x S model input, notes): every picture goes through the one
        framing, facevae.inference.face.align_face (the face found and framed like CelebA's
        aligned images, or the whole picture with whole_image=True). A tensor is model input
        already and is used as is."""
        from .face import align_face

        if torch.is_tensor(images):
            images = images if images.ndim == 4 else images[None]
            if images.shape[1:] != (3, self.image_size, self.image_size):
                raise UserError(f"images must be N x 3 x {self.image_size} x {self.image_size}; "
                                f"got {tuple(images.shape)}")
            return images.float().to(self.model.device), []
        if not isinstance(images, (list, tuple)):
            images = [images]
        self._check_count(len(images))
        tensors, notes = [], []
        for item in images:
            source = "the photo" if isinstance(item, Image.Image) else (
                "the uploaded image" if isinstance(item, (bytes, bytearray)) else str(item))
            picture = item if isinstance(item, Image.Image) else imaging.read_image(item)
            aligned = align_face(picture, whole_image=whole_image, source=source)
            prefix = f"{source}: " if len(images) > 1 and not whole_image else ""
            notes += [prefix + note for note in aligned.notes]
            tensors.append(imaging.preprocess(aligned.image, self.model.preprocessing))
        return torch.stack(tensors).to(self.model.device), list(dict.fromkeys(notes))  # each note once

    def _result(self, latents: torch.Tensor, columns: int, **layout: Any) -> SynthesisResult:
        images = imaging.to_uint8(self.decode_tensor(latents))
        return SynthesisResult(images, latents.detach().cpu().numpy().astype(np.float32), columns, **layout)

    # --- what users ask for ----------------------------------------------------------

    def generate(self, n: int = 10, seed: int = 0, temperature: float = 1.0,
                 attributes: Mapping[str, float] | None = None, columns: int | None = None,
                 keep: Sequence[str] = (), keep_mode: str = "auto", method: str = "linear") -> SynthesisResult:
        """n faces from the prior with attribute edits (method: "linear" or "guided", see editing)."""
        latents = apply_edits(self, self.sample_latents(n, seed, temperature), attributes, keep, keep_mode, method)
        return self._result(latents, columns or min(n, GRID_COLUMNS))

    def decode(self, latents: Any, attributes: Mapping[str, float] | None = None, columns: int | None = None,
               keep: Sequence[str] = (), keep_mode: str = "auto", method: str = "linear") -> SynthesisResult:
        """Faces for given codes (e.g. a saved .npy), optionally with attribute edits."""
        codes = self.as_latents(latents)
        self._check_count(len(codes))
        codes = apply_edits(self, codes, attributes, keep, keep_mode, method)
        return self._result(codes, columns or min(len(codes), GRID_COLUMNS))

    def reconstruct(self, photos: Any, refine_steps: int = 0, columns: int = GRID_COLUMNS,
                    whole_image: bool = False, tune_steps: int | None = None) -> SynthesisResult:
        """Framed photos above their reconstructions, `columns` pairs per row.

        photos: an EncodedPhoto, or what `encode` takes (paths, bytes, PIL images, an
        N x 3 x S x S tensor), encoded first with refine_steps, whole_image and tune_steps.
        """
        encoded = self.encode(photos, refine_steps, whole_image, tune_steps=tune_steps)
        originals, recon = encoded.images, self._draw_encoded(encoded, encoded.codes)
        columns = min(columns, len(originals))
        ordered, labels = [], []
        for start in range(0, len(originals), columns):
            top, bottom = originals[start:start + columns], recon[start:start + columns]
            blank = torch.ones((columns - len(top), *top.shape[1:]), device=top.device)  # pads a short last row
            ordered += [top, blank, bottom, blank]
            labels += ["original", "reconstruction"]
        images = imaging.to_uint8(torch.cat(ordered))
        return SynthesisResult(images, encoded.codes.cpu().numpy().astype(np.float32), columns, row_labels=labels,
                               faces=imaging.to_uint8(recon), notes=encoded.notes)

    def arithmetic(self, attribute: str, n: int = 5, seed: int = 0,
                   strengths: Sequence[float] = DEFAULT_STRENGTHS, temperature: float = 1.0,
                   latents: Any = None, attributes: Mapping[str, float] | None = None,
                   keep: Sequence[str] = (), keep_mode: str = "auto", method: str = "linear") -> SynthesisResult:
        """The same n faces (rows) with one attribute at each strength (columns); the
        unmodified column (strength 0) is marked. `attributes` are applied to every face first;
        `keep` holds for the walked attribute too; method "guided" walks every face of the grid."""
        if attribute not in self.model.attributes:
            raise self._unknown_attribute(attribute)
        base = self.as_latents(latents) if latents is not None else self.sample_latents(n, seed, temperature)
        fixed = dict(attributes or {})
        columns = [{**fixed, attribute: fixed.get(attribute, 0.0) + float(s)} for s in strengths]
        self._check_count(len(base) * len(columns))
        if method == "guided":  # one strength per face of the (n*S)-face grid, row-major
            per_face = {name: torch.tensor([c.get(name, 0.0) for c in columns] * len(base)) for name in columns[-1]}
            codes = apply_edits(self, base.repeat_interleave(len(columns), 0), per_face, keep, keep_mode, method)
        else:  # S x D offsets ("decoded" keep depends on the strength) -> (n*S) x D codes
            codes = (base[:, None, :] + self._offsets(columns, keep, keep_mode)[None]).reshape(-1, self.latent_dim)
        zero = [i for i, s in enumerate(strengths) if float(s) == 0.0]
        return self._result(codes, len(strengths), column_labels=[strength_label(s) for s in strengths],
                            marked_column=zero[0] if zero else None)

    def morph(self, n_pairs: int = 5, steps: int = 10, seed: int = 0, method: str = "linear",
              start: Any = None, end: Any = None, temperature: float = 1.0,
              attributes: Mapping[str, float] | None = None, keep: Sequence[str] = (),
              keep_mode: str = "auto", whole_image: bool = False, tune_steps: int | None = None) -> SynthesisResult:
        """One row per pair of faces, `steps` faces from start to end (both included).

        start / end: codes (N x D), images (N x 3 x S x S, PIL images, paths: photos are framed
        like edit's unless whole_image=True, and tuned like encode's), or None for random faces
        (seeds `seed` and `seed + 1`). `attributes` shift the whole path. Between tuned photos the
        faces are drawn with decoders blended from the two ends' (facevae.inference.tuning.blended).
        """
        offset = self.resolve_attributes(attributes, keep, keep_mode)
        if method not in ("linear", "slerp"):
            raise UserError(f"morph method must be 'linear' or 'slerp', got '{method}'")
        if steps < 2:
            raise UserError(f"morph needs at least 2 steps (the two end faces), got {steps}")
        first, first_decoders = self._endpoint(start, n_pairs, seed, temperature, whole_image, tune_steps)
        last, last_decoders = self._endpoint(end, n_pairs, seed + 1, temperature, whole_image, tune_steps)
        if len(first) != len(last):
            raise UserError(f"morph needs as many end faces as start faces (got {len(first)} and {len(last)})")
        t = torch.linspace(0, 1, steps, device=first.device)
        path = (slerp if method == "slerp" else lerp)(first, last, t)  # N x T x D
        path[:, 0], path[:, -1] = first, last  # exact end faces, whatever the rounding
        codes = path.reshape(-1, self.latent_dim) + offset
        self._check_count(len(codes))
        if first_decoders is None and last_decoders is None:
            return self._result(codes, steps)
        from .tuning import morph_faces

        faces = morph_faces(self._draw, path + offset, first_decoders, last_decoders, self.decoder, t)
        return SynthesisResult(imaging.to_uint8(faces), codes.cpu().numpy().astype(np.float32), steps)

    def _endpoint(self, value: Any, n: int, seed: int, temperature: float, whole_image: bool,
                  tune_steps: int | None) -> tuple[torch.Tensor, list[torch.nn.Module] | None]:
        """A morph's end codes (N x D) and, for tuned photos, their decoders."""
        if value is None:
            return self.sample_latents(n, seed, temperature), None
        if (torch.is_tensor(value) or isinstance(value, np.ndarray)) and np.ndim(value) <= 2:
            return self.as_latents(value), None
        encoded = self.encode(value, whole_image=whole_image, tune_steps=tune_steps)
        decoders = encoded.decoder if isinstance(encoded.decoder, torch.nn.ModuleList) else [encoded.decoder]
        return encoded.codes, None if encoded.decoder is None else list(decoders)

    def edit(self, photo: Any, attributes: Mapping[str, float] | None = None, refine_steps: int = 0,
             whole_image: bool = False, keep: Sequence[str] = (), keep_mode: str = "auto",
             method: str = "linear", tune_steps: int | None = None) -> SynthesisResult:
        """A photo with attribute edits: [framed photo, reconstruction, edited], a row per photo.

        photo: an EncodedPhoto (from `encode`; refine_steps, whole_image and tune_steps then do
        nothing), or what `encode` takes. result.faces and result.latents are the reconstruction and the
        edited face, photo by photo. The edit is resolved once, before any image work.
        """
        edited = prepare_edits(self, attributes, keep, keep_mode, method)  # unknown names fail before any work
        encoded = self.encode(photo, refine_steps, whole_image, tune_steps=tune_steps)
        codes = torch.stack([encoded.codes, edited(encoded.codes)], 1).reshape(-1, self.latent_dim)  # 2N x D
        faces = self._draw_encoded(encoded, codes)  # reconstruction, edited; photo by photo
        tiles = torch.cat([encoded.images[:, None], faces.reshape(len(encoded), 2, *faces.shape[1:])], 1)
        return SynthesisResult(imaging.to_uint8(tiles.flatten(0, 1)), codes.cpu().numpy().astype(np.float32), 3,
                               column_labels=["photo", "reconstruction", "edited"], notes=encoded.notes,
                               faces=imaging.to_uint8(faces))
