"""Pivotal tuning: a per-photo copy of the decoder that draws the photo at its code.

A 64 px VAE's codes near the prior draw average faces, so no code alone reaches a person
(inversion, facevae.inference.inversion, stops at "a similar stranger"). Pivotal tuning
(Roich et al., "Pivotal Tuning for Latent-based Editing of Real Images", 2021) keeps the code
found by inversion (the pivot) and fine-tunes a COPY of the decoder for a few steps so that it
draws the photo there:

    fit      = mean(w * (T(pivot) - photo)^2)              w: inversion's face weights
    locality = mean((T(c) - O(c))^2)                                ("absolute", "random")
            or mean(((T(c) - T(pivot)) - (O(c) - O(pivot)))^2)     ("delta", "span")
    loss     = fit + locality_weight * locality

T is the copy being tuned, O the untouched decoder. The codes c are drawn afresh every step
(locality_codes of them): with "absolute" and "delta", c = pivot + s * v for attribute
vectors v (the directions edits use) and s = +-locality_strength; "span" uses random
combinations of all the vectors; "random" is the paper's choice, random directions at
distance locality_strength times the vectors' mean length. "absolute" (the default) keeps the
edited faces themselves close to the untuned decoder's, so an edit of the tuned photo moves
towards what the same edit draws untuned; "delta" keeps only the edit's pixel change, which
on a sharp real photo turned out too weak to move an independent classifier (measured in
docs/benchmarks.md).

Redraw: a sharp photo drawn by the tuned copy hardly changes when an edit moves its code (an
independent classifier saw a Smiling edit of the tuned photo do far less than the same edit of
the untuned face: docs/benchmarks.md, "Redrawn edits"). So an edit of a tuned photo is drawn as

    edited = T(c) + m * (O(c) + L(T(pivot) - O(pivot)) - T(c))
    m      = clamp(blur(mean_rgb |O(c) - O(pivot)|) / redraw_change, 0, 1)

(`redrawn`): where the untouched decoder's edit changes the face by at least redraw_change
(0-1 pixel scale, after a 5 x 5 box blur at 64 px), the edited face is the untouched decoder's
drawing, coloured by L, the low frequencies (blurred over about 13 x 13 pixels at 64 px) of
what tuning changed at the pivot: the person's skin, colouring and light; where the edit
changes nothing it is the tuned photo; a blend in between. At the pivot m = 0, so the
reconstruction is the tuned copy's. redraw_change = 0 draws edits with the tuned copy alone.

Only the parameters named by `layers` change (prefixes of the decoder's parameter names;
empty: all). The decoder stays in eval mode: batch norm uses, and keeps, its running
statistics. The loaded model is never modified: tune() returns a new Decoder. The defaults
(DEFAULT_TUNING) were chosen with benchmarks/photos.py on real photos, see docs/benchmarks.md.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import UserError
from ..limits import MAX_TUNE_STEPS
from ..model.bundle import FaceModel
from ..model.vae import Decoder
from .adam import Adam
from .encoded import EncodedPhoto
from .inversion import STOP_CHECK, InversionSettings, face_weights

LOCALITY_MODES = ("delta", "span", "absolute", "random", "none")


@dataclass(frozen=True)
class TuningSettings:
    """How the decoder copy is tuned (see the module docstring)."""

    steps: int = 15
    lr: float = 4e-4  # Adam's step size
    layers: tuple[str, ...] = ()  # parameter-name prefixes to tune, e.g. ("stages.3", "to_rgb"); () = all
    locality: str = "absolute"  # "absolute", "delta", "span", "random" or "none"
    locality_weight: float = 1.0
    locality_codes: int = 1  # regulariser codes per step (drawn afresh each step)
    locality_strength: float = 2.0  # s in pivot + s * v
    redraw_change: float = 0.06  # edits: where the untouched decoder's edit changes pixels this much, redraw; 0 off

    def __post_init__(self) -> None:
        if not 0 <= self.steps <= MAX_TUNE_STEPS:
            raise UserError(f"tuning steps must be between 0 and {MAX_TUNE_STEPS}, got {self.steps}")
        if self.locality not in LOCALITY_MODES:
            raise UserError(f"locality must be one of {', '.join(LOCALITY_MODES)}, not {self.locality!r}")
        if (self.lr <= 0 or self.locality_weight < 0 or self.locality_codes < 1 or self.locality_strength <= 0
                or not 0 <= self.redraw_change <= 1):
            raise UserError("tuning settings need lr > 0, locality_weight >= 0, locality_codes >= 1, "
                            "locality_strength > 0 and redraw_change between 0 and 1")


DEFAULT_TUNING = TuningSettings()


def tuning_steps(requested: int | None) -> int:
    """The tuning steps a front end's option asks for: None means the library's default."""
    return DEFAULT_TUNING.steps if requested is None else requested


@dataclass(frozen=True)
class TuningLosses:
    """One step's loss terms (scalars)."""

    fit: torch.Tensor
    locality: torch.Tensor
    total: torch.Tensor


def fit_loss(drawn: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """drawn, target: 1 x 3 x S x S; weights: 1 x S x S with mean 1."""
    return (weights * (drawn - target) ** 2).mean()


def locality_loss(tuned_codes: torch.Tensor, tuned_pivot: torch.Tensor, original_codes: torch.Tensor,
                  original_pivot: torch.Tensor, mode: str) -> torch.Tensor:
    """K x 3 x S x S images at the regulariser codes, 1 x 3 x S x S at the pivot, tuned and untouched."""
    if mode in ("delta", "span"):
        return ((tuned_codes - tuned_pivot) - (original_codes - original_pivot)).pow(2).mean()
    return (tuned_codes - original_codes).pow(2).mean()


def tuning_losses(tuned: torch.Tensor, original: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
                  settings: TuningSettings) -> TuningLosses:
    """tuned, original: (1 + K) x 3 x S x S, the pivot's image first, then the K regulariser codes'."""
    fit = fit_loss(tuned[:1], target, weights)
    if settings.locality == "none":
        locality = torch.zeros((), device=tuned.device)
    else:
        locality = locality_loss(tuned[1:], tuned[:1], original[1:], original[:1], settings.locality)
    return TuningLosses(fit, locality, fit + settings.locality_weight * locality)


def locality_codes(pivot: torch.Tensor, directions: torch.Tensor, settings: TuningSettings,
                   generator: torch.Generator) -> torch.Tensor:
    """1 x D pivot, A x D directions -> K x D codes around the pivot (see the module docstring)."""
    k = settings.locality_codes
    signs = torch.randint(0, 2, (k, 1), generator=generator).float() * 2 - 1  # K x 1, each +-1
    if settings.locality == "span":  # random combinations of all the directions: every edit at once
        weights = torch.randn(k, len(directions), generator=generator) / len(directions) ** 0.5
        offsets = weights @ directions.cpu().float()
    elif settings.locality == "random":
        length = directions.norm(dim=1).mean()
        offsets = torch.randn(k, directions.shape[1], generator=generator)
        offsets = offsets / offsets.norm(dim=1, keepdim=True) * length
    else:
        offsets = directions.cpu()[torch.randint(0, len(directions), (k,), generator=generator)]
    return pivot + (signs * settings.locality_strength * offsets).to(pivot)


def tunable_parameters(decoder: Decoder, layers: tuple[str, ...]) -> list[torch.nn.Parameter]:
    """The decoder's parameters whose names start with one of `layers` (all for ())."""
    names = [name for name, _ in decoder.named_parameters()]
    unknown = [prefix for prefix in layers if not any(name.startswith(prefix) for name in names)]
    if unknown:
        raise UserError(f"no decoder parameters start with {', '.join(unknown)}; the decoder's layers: "
                        f"{', '.join(sorted({name.rsplit('.', 1)[0] for name in names}))}")
    return [p for name, p in decoder.named_parameters() if not layers or name.startswith(tuple(layers))]


def tune(decoder: Decoder, pivot: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
         directions: torch.Tensor | None = None, settings: TuningSettings = DEFAULT_TUNING, seed: int = 0,
         cancel: Callable[[], None] | None = None, reference: torch.nn.Module | None = None,
         progress: bool = False, autocast: torch.dtype | None = None) -> Decoder:
    """A copy of `decoder` tuned so that it draws `target` at `pivot`; `decoder` is left as it was.

    pivot: 1 x D code (from inversion); target: 1 x 3 x S x S photo in [0, 1]; weights: 1 x S x S
    pixel weights (facevae.inference.inversion.face_weights); directions: A x D attribute vectors
    the regulariser keeps edits along (None or empty: random directions of length sqrt(D) / 4).
    cancel: called between steps, raises to abandon the work (default: inversion's STOP_CHECK,
    which the server sets around each request). reference: draws the untouched decoder's images
    for the regulariser (e.g. the pipeline's FastDecoder of the same weights; default `decoder`).
    autocast: the dtype the copy's forward passes run in (the pipeline's runtime: bfloat16 where
    the CPU computes it natively, which is faster; None: float32); the weights, the Adam
    state and the losses stay float32. The same inputs and seed give the same copy.
    """
    if pivot.ndim != 2 or len(pivot) != 1 or target.ndim != 4 or len(target) != 1:
        raise UserError(f"tuning takes one photo: a 1 x D pivot and a 1 x 3 x S x S image; got "
                        f"{tuple(pivot.shape)} and {tuple(target.shape)}")
    original = reference or decoder
    tuned = copy.deepcopy(decoder).eval()
    for parameter in tuned.parameters():
        parameter.requires_grad_(False)
    trained = tunable_parameters(tuned, settings.layers)
    for parameter in trained:
        parameter.requires_grad_(True)
    if directions is None or len(directions) == 0:
        directions = torch.randn(8, pivot.shape[1], generator=torch.Generator().manual_seed(seed))
        directions = directions / directions.norm(dim=1, keepdim=True) * pivot.shape[1] ** 0.5 / 4
    pivot, target, weights = pivot.detach(), target.detach().to(pivot), weights.to(pivot)
    cancel = cancel or STOP_CHECK.get()
    generator = torch.Generator().manual_seed(seed)
    optimiser = Adam(trained, lr=settings.lr)
    with torch.enable_grad():
        for _ in tqdm(range(settings.steps), desc="tuning", unit="step", disable=not progress, leave=False):
            if cancel is not None:
                cancel()
            if settings.locality == "none":
                codes, untouched = pivot, None
            else:
                codes = torch.cat([pivot, locality_codes(pivot, directions, settings, generator)])  # (1 + K) x D
                with torch.no_grad():
                    untouched = original(codes).float()
            optimiser.zero_grad()
            with torch.autocast(pivot.device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
                drawn = tuned(codes)  # (1 + K) x 3 x S x S
            losses = tuning_losses(drawn.float(), untouched, target, weights, settings)
            losses.total.backward()
            optimiser.step()
    for parameter in tuned.parameters():
        parameter.requires_grad_(False)
    return tuned


def tune_photos(model: FaceModel, encoded: EncodedPhoto, steps: int, drawing: Callable[[Decoder], torch.nn.Module],
                reference: torch.nn.Module | None = None, settings: TuningSettings = DEFAULT_TUNING, seed: int = 0,
                progress: bool = False, autocast: torch.dtype | None = None) -> EncodedPhoto:
    """`encoded` with a decoder tuned to each of its photos (FacePipeline.encode's tune_steps).

    One photo gets one decoder; N photos a ModuleList of N, whose codes are drawn photo by photo
    (FacePipeline._draw_encoded). drawing: turns a tuned Decoder into the module that draws
    faces (the pipeline's FastDecoder rewrite); reference: the untouched decoder's fast version.
    The attribute vectors are the regulariser's directions (random ones for a model without);
    autocast: see `tune`.
    """
    settings = replace(settings, steps=steps)
    weights = face_weights(model.preprocessing, InversionSettings().face_weight).to(model.device)
    directions = torch.stack(list(model.attributes.values())) if model.attributes else None
    decoders = [drawing(tune(model.decoder, code[None], image[None], weights, directions, settings, seed,
                             reference=reference, progress=progress, autocast=autocast))
                for image, code in zip(encoded.images, encoded.codes)]
    decoder = decoders[0] if len(decoders) == 1 else torch.nn.ModuleList(decoders)
    return encoded.with_decoder(decoder, tune_steps=steps, tune_lr=settings.lr, tune_layers=list(settings.layers),
                                locality=settings.locality, locality_weight=settings.locality_weight,
                                redraw_change=settings.redraw_change)


def redrawn(tuned: torch.Tensor, untouched: torch.Tensor, change: float) -> torch.Tensor:
    """Edited faces of a tuned photo, redrawn where the edit acts (see the module docstring).

    tuned, untouched: (1 + K) x 3 x S x S, the photo's pivot and then K edited codes, drawn by
    the tuned copy and by the untouched decoder. Returns the K edited faces. change: the
    blurred mean RGB change (0-1) of the untouched face at which a pixel is wholly redrawn
    (0: the tuned copy's faces as they are). A redrawn pixel is the untouched decoder's, plus
    the low frequencies of what tuning changed at the pivot (the person's colouring and light,
    which the untouched decoder misses: a redrawn smile keeps the person's skin).
    """
    tuned, untouched = tuned.float(), untouched.float()
    if change <= 0:
        return tuned[1:]
    size = tuned.shape[-1]
    moved = _box_blur((untouched[1:] - untouched[:1]).abs().mean(1, keepdim=True), 2 * (size // 32) + 1)  # K x 1
    colouring = _box_blur(_box_blur(tuned[:1] - untouched[:1], 2 * (size // 20) + 1), 2 * (size // 20) + 1)  # 1 x 3
    return torch.lerp(tuned[1:], (untouched[1:] + colouring).clamp(0, 1), (moved / change).clamp(0, 1))


def _box_blur(images: torch.Tensor, width: int) -> torch.Tensor:
    """N x C x S x S images averaged over width x width squares (odd width; at the borders
    over the part inside)."""
    return F.avg_pool2d(images, width, 1, width // 2, count_include_pad=False) if width > 1 else images


def blended(start: torch.nn.Module, end: torch.nn.Module, t: float) -> torch.nn.Module:
    """A decoder whose weights are (1 - t) * start's + t * end's, for morphs between tuned photos.

    start, end: two decoders of one architecture, tuned copies of the same decoder (or one of
    them the untouched decoder), so their weights lie close together and every blend draws a face.
    """
    if t == 0 or start is end:
        return start
    if t == 1:
        return end
    mixed, ends = copy.deepcopy(start), end.state_dict()
    mixed.load_state_dict({name: torch.lerp(value, ends[name], t) if value.is_floating_point() else value
                           for name, value in start.state_dict().items()})
    return mixed


def morph_faces(draw: Callable[[torch.Tensor, torch.nn.Module], torch.Tensor], path: torch.Tensor,
                starts: list[torch.nn.Module] | None, ends: list[torch.nn.Module] | None,
                untouched: torch.nn.Module, t: torch.Tensor) -> torch.Tensor:
    """N x T x D morph codes, each drawn by `draw` with its pair's end decoders blended by t
    (`untouched` for an end without one): N*T x 3 x S x S."""
    faces = []
    for pair, row in enumerate(path):
        start, end = (starts[pair] if starts else untouched), (ends[pair] if ends else untouched)
        faces += [draw(code[None], blended(start, end, float(weight))) for code, weight in zip(row, t)]
    return torch.cat(faces)
