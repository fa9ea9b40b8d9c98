"""Classifier-guided attribute edits: walk each code along what an attribute classifier sees.

The linear edit adds strength x v to every code, the same offset for every face. A guided
edit walks each code in `steps` equal steps instead, and at every step looks at the face:

    image = decode(z)                        N x 3 x S x S, resized to the guide's size
    logits = guide(image)                    N x A, one per classifier attribute (the mean of the
                                             logits of the face and of its mirror image)
    g_t = d logit_t / dz,  g_k = d logit_k / dz     target t, kept attributes k (N x D each)

- the direction for target t is g_t / |g_t| + anchor x v_t / |v_t|: the guide's gradient,
  anchored by the attribute vector (the data's mean change). The gradient alone also finds
  changes that a small classifier reads as the attribute but a person barely sees (measured:
  Eyeglasses edits that raised the guide's P(eyeglasses) far more than an independent
  classifier's); the anchor keeps the walk among the changes faces with the attribute show;
- that direction is made orthogonal first to the kept attributes' vectors v_k (exactly), then
  to their gradients g_k (per face, by a lightly damped projection: `keep_ridge`, below), and
  scaled to |strength_t| x |v_t| / steps, signed
  like the strength: after all the steps the path is exactly as long as the linear edit's
  offset (the same strength unit). The gradients hold what the guide reads; the vectors (the
  data's mean change of each kept attribute) stand for what a small classifier misses of it
  (measured with independent classifiers: Male keeping Smiling leaks about a third as much
  smile with them; docs/benchmarks.md). In that order, not jointly: a step orthogonal to both spans
  at once leaves the edit too little room (measured: less success, no less leak). The
  gradients' projection is damped, d - G^T (G G^T + keep_ridge x mean |g|^2 I)^-1 G d: an
  ensemble's readings of one kept attribute are nearly parallel, and the exact projection
  also removed the small directions in which they differ, which cost the edit and held
  nothing the judges saw (measured, ridge 0.1: 0.01-0.04 more success, leaks moved by 0.008
  at most, within their errors; docs/benchmarks.md); what drifts is pulled back (next point);
- kept attributes are held where they started: their logits, clipped to +-KEEP_CLIP, may
  drift by at most `tolerance`; beyond that a least-squares step within span(g_k) pulls them
  back (damped, and never longer than a step); a last pull-back follows the last step;
- a kept output the guide is sure of (|logit| > KEEP_CLIP) is not held while it stays so: its
  gradient is neither projected out nor pulled along, since moving it changes nothing the
  guide could see, and projecting it out would only shorten the edit (measured on real
  faces: Smiling keeping Male succeeds more, the judges' leaks no larger; docs/benchmarks.md).
  Once it comes within the clip it is held like the others;
- keep=KEEP_EVERYTHING holds every classifier attribute that is not edited. Those dozens of
  readings' gradients together span nearly every direction that changes the target
  (measured on celeba64-original: projecting them all out exactly left 0.03 of Smiling's
  success, 0.78 free), so with "*" they are projected out damped (a ridge of
  `everything_ridge` x their mean square; the kept vectors are not used: the other 39 hold
  all but a few percent of any one): half the edit, the other readings moving a quarter as
  much as without keep (docs/benchmarks.md);
- with an ensemble guide (facevae.model.classifier, members > 1: the shipped one) the target
  follows the members' mean logit, and each member's reading of a kept attribute is held on
  its own (GuidedSettings.hold_members): a change that one network reads as the kept
  attribute and another does not is held off too, so what is kept is what they agree on.

What it costs: each step is one decoder + classifier forward pass and one backward pass per
target and kept reading (batched with is_grads_batched). A member's own reading of a kept
attribute is differentiated through that member alone, then through the decoder with the
others, so keeping everything else costs about one member's backward pass per attribute and
member, plus one decoder backward pass per held reading; a kept reading the guide is sure of
on every face of the batch gets none. Deterministic: no
random numbers. bf16 autocast where the runtime computes bf16 natively (the gradients and the
projections are float32). `cancel`, when given, is called before each step and raises to
abandon the work (the server's deadlines; inference.inversion.STOP_CHECK is used otherwise).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import UserError

if TYPE_CHECKING:
    from .pipeline import FacePipeline

KEEP_EVERYTHING = "*"  # keep=["*"]: every classifier attribute that is not edited
KEEP_CLIP = 5.0  # kept logits beyond +-5 (probability 0.007 / 0.993): the guide is sure, nothing to hold
MAX_STEPS = 200


@dataclass(frozen=True)
class GuidedSettings:
    """How a guided edit walks (see the module docstring)."""

    steps: int = 5  # the walks are nearly straight: 3, 5, 10 and 20 steps edit alike (docs/benchmarks.md)
    tolerance: float = 0.25  # kept logits may drift this far before being pulled back
    pull_back: float = 1.0  # share of the excess drift removed per step
    anchor: float = 1.0  # weight of the attribute vector's direction beside the unit gradient (0: gradient only)
    damping: float = 1e-3  # ridge term of the pull-back's least squares, relative to the gradients' scale
    hold_members: bool = True  # an ensemble guide: hold each member's reading of a kept attribute, not just the mean
    project_vectors: bool = True  # also step orthogonally to the held attributes' vectors, not just their gradients
    keep_ridge: float = 0.1  # named keeps: ridge of the kept gradients' damped projection (0: exact)
    everything_ridge: float = 1.0  # keep="*": the same ridge for every other attribute's gradients

    def __post_init__(self) -> None:
        if not 1 <= self.steps <= MAX_STEPS:
            raise UserError(f"guided edits take between 1 and {MAX_STEPS} steps, got {self.steps}")
        if (self.tolerance < 0 or not 0 <= self.pull_back <= 1 or self.damping <= 0 or self.anchor < 0
                or self.everything_ridge < 0 or self.keep_ridge < 0):
            raise UserError("guided settings need tolerance >= 0, pull_back in [0, 1], damping > 0, anchor >= 0 "
                            "and keep_ridge, everything_ridge >= 0")


class Guide:
    """A classifier applied to decoded faces: N x D codes -> N x A logits, differentiable."""

    def __init__(self, decoder: torch.nn.Module, classifier: torch.nn.Module, autocast: torch.dtype | None = None):
        self.decoder, self.classifier, self.autocast = decoder, classifier, autocast
        self.names: list[str] = list(classifier.attribute_names)

    def readings(self, codes: torch.Tensor) -> torch.Tensor:
        """N x D -> M x N x A float32 logits of the decoded faces (resized to the classifier's
        size), one set per member of an ensemble classifier (M = 1 for any other module)."""
        return torch.stack(self.member_readings(self.faces(codes)))

    def faces(self, codes: torch.Tensor) -> torch.Tensor:
        """N x D -> N x 3 x S x S decoded faces at the classifier's size S (the autocast dtype's)."""
        with self._autocast(codes.device.type):
            images = self.decoder(codes)
            size = self.classifier.image_size
            if images.shape[-1] != size:
                images = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True,
                                       align_corners=False)
            return images

    def member_readings(self, faces: torch.Tensor) -> list[torch.Tensor]:
        """N x 3 x S x S faces -> M float32 N x A logits, each the mean of the member's logits of
        the face and of its mirror image. Each member's is its own autograd graph where the
        classifier offers that (member_outputs), so a gradient of one member's reading costs a
        backward pass through that member only."""
        with self._autocast(faces.device.type):
            # Averaged with the mirrored face: a feature the guide trusts must look right both ways
            # round, which takes away pixel patterns that fool one orientation only.
            both = torch.cat([faces, faces.flip(-1)])  # 2N: the faces, then their mirror images
            # Channels-last convolutions (oneDNN's preferred layout) run faster both forward and
            # backward, with AVX-512 and AVX2 alike (benchmarks/guided_edits.py --timing-only).
            both = both.contiguous(memory_format=torch.channels_last)
            outputs = getattr(self.classifier, "member_outputs", None)
            members = getattr(self.classifier, "member_logits", None)
            logits = (outputs(both) if outputs is not None else
                      list(members(both)) if members is not None else [self.classifier(both)])  # M x 2N x A
            return [(each[:len(faces)].float() + each[len(faces):].float()) / 2 for each in logits]

    def _autocast(self, device_type: str) -> torch.autocast:
        return torch.autocast(device_type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None)

    def logits(self, codes: torch.Tensor) -> torch.Tensor:
        """N x D -> N x A: the members' mean logits (what the classifier reports)."""
        return self.readings(codes).mean(0)

    def index(self, name: str) -> int:
        if name not in self.names:
            raise UserError(f"the guiding classifier does not know '{name}', so it cannot guide or keep it; "
                            f"it knows {', '.join(self.names)} (use method='linear' for other attributes)")
        return self.names.index(name)


Strengths = Mapping[str, "float | torch.Tensor"]  # {attribute: one strength, or one per face (N)}


def expand_keep(names: Sequence[str], strengths: Strengths, keep: Sequence[str]) -> list[str]:
    """The kept attribute names, once each; KEEP_EVERYTHING: every one of the guide's `names`
    that is not edited (no checks: kept_names checks them)."""
    if KEEP_EVERYTHING in keep:
        return [name for name in names if name not in strengths]
    return list(dict.fromkeys(keep))


def kept_names(guide: Guide, strengths: Strengths, keep: Sequence[str]) -> list[str]:
    """expand_keep with the guide's names; errors for unknown or edited ones."""
    if KEEP_EVERYTHING not in keep:
        both = [name for name in keep if name in strengths]
        if both:
            raise UserError(f"{', '.join(both)} is both edited and kept unchanged; remove it from keep")
        for name in keep:
            guide.index(name)
    return expand_keep(guide.names, strengths, keep)


def guided_edit(guide: Guide, codes: torch.Tensor, strengths: Strengths, vectors: Mapping[str, torch.Tensor],
                keep: Sequence[str] = (), settings: GuidedSettings = GuidedSettings(),
                cancel: Callable[[], None] | None = None, progress: bool = False) -> torch.Tensor:
    """N x D codes -> N x D edited codes. strengths: {attribute: s}, s a number or one per face;
    vectors: {attribute: v}, the linear edit's D vectors: strength s walks a path of length
    |s| x |v|, and v's direction anchors the gradient's (settings.anchor); a kept attribute's
    vector, where given, is stepped off as well (settings.project_vectors)."""
    from .inversion import STOP_CHECK

    codes = codes.detach().float().clone()
    amounts = {name: torch.as_tensor(value, dtype=torch.float32).to(codes.device).expand(len(codes))
               for name, value in strengths.items()}  # N each
    targets = [name for name, amount in amounts.items() if bool(amount.ne(0).any())]
    kept = kept_names(guide, strengths, keep)
    if not targets:
        return codes
    target_rows, kept_rows = [guide.index(name) for name in targets], [guide.index(name) for name in kept]
    step_sizes = torch.stack([amounts[n] * float(vectors[n].norm()) / settings.steps for n in targets], 1)  # N x T
    anchors = torch.stack([vectors[n].float() / vectors[n].norm().clamp_min(1e-12) for n in targets])  # T x D units
    longest_move = step_sizes.abs().sum(1, keepdim=True)  # N x 1: one step of every target together
    cancel = cancel or STOP_CHECK.get()
    everything = KEEP_EVERYTHING in keep
    # K x D; not with keep="*": the other 39 vectors together hold all but a few percent of any one.
    kept_vectors = _kept_vectors(kept, vectors, codes) if settings.project_vectors and not everything else None
    ridge = settings.everything_ridge if everything else settings.keep_ridge
    start: torch.Tensor | None = None  # N x K clipped kept logits of the unedited faces
    for step in tqdm(range(settings.steps + (1 if kept else 0)), desc="guided edit", unit="step",
                     disable=not progress, leave=False):
        if cancel is not None:
            cancel()
        logits, gradients = _logits_and_gradients(guide, codes, target_rows, kept_rows, settings.hold_members)
        target_grads, kept_grads = gradients[:, :len(targets)], gradients[:, len(targets):]  # sure kept: zero rows
        clipped = logits[:, len(targets):].clamp(-KEEP_CLIP, KEEP_CLIP)  # N x K
        start = clipped if start is None else start
        move = torch.zeros_like(codes)
        if kept:
            correction = settings.pull_back * _pull_back(kept_grads, clipped - start, settings)
            scale = (longest_move / correction.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
            move += correction * scale  # never longer than one step of the edit
        if step < settings.steps:
            directions = _unit(target_grads) + settings.anchor * anchors.to(codes)[None]  # N x T x D
            if kept_vectors is not None:
                directions = _without(directions, _held_vectors(kept_grads, kept_vectors))
            move += _target_step(directions, kept_grads, step_sizes, ridge)
        codes = codes + move
    return codes


def _logits_and_gradients(guide: Guide, codes: torch.Tensor, target_rows: list[int], kept_rows: list[int],
                          hold_members: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(N x R logits, N x R x D gradients d logit_r / d code): R = T targets (the members' mean)
    then the kept attributes, each member's own logit (hold_members, M x K rows) or the mean (K).
    A kept output the guide is sure of on a face (|logit| > KEEP_CLIP) is not held there: its
    gradient row is zero for that face (out of every projection and pull-back), and a row sure
    on every face takes no backward pass at all, which is what a walk costs (keeping everything
    else on one face skips about a quarter of them).

    Rows that read every member alike (targets; kept rows without hold_members) take one
    backward pass through the members' mean, and each member's own kept rows one through that
    member alone (a stacked output would backpropagate zeros through every other member); with
    more than one such group, each stops at the faces' pixels and all rows then go back through
    the decoder together."""
    with torch.enable_grad():
        variable = codes.detach().requires_grad_(True)
        faces = guide.faces(variable)  # N x 3 x S x S
        readings = guide.member_readings(faces)  # M of N x A
        count = len(readings)
        stacked = torch.stack([reading.detach() for reading in readings])  # M x N x A
        kept = stacked[:, :, kept_rows]  # M x N x K
        kept = kept.permute(1, 0, 2).flatten(1) if hold_members else kept.mean(0)  # N x MK or N x K
        logits = torch.cat([stacked[:, :, target_rows].mean(0), kept], 1)  # N x R
        held = torch.cat([torch.ones(len(target_rows), len(codes), dtype=torch.bool, device=codes.device),
                          (kept.abs() <= KEEP_CLIP).T])  # R x N: targets always, kept outputs not sure
        needed = held.any(1).nonzero()[:, 0].tolist()  # the rows to differentiate
        # {group: [(slot in needed, classifier column)]}; group -1 is the members' mean, m >= 0 member m.
        groups: dict[int, list[tuple[int, int]]] = {}
        for slot, row in enumerate(needed):
            group, column = _row_source(row, target_rows, kept_rows, hold_members)
            groups.setdefault(group, []).append((slot, column))
        outputs = {group: (sum(readings) / count if group < 0 else readings[group]) for group in groups}  # N x A each
        if len(groups) == 1:  # one backward pass from the logits to the codes
            ((group, uses),) = groups.items()
            taken = _rows_gradient(outputs[group], variable, [column for _, column in uses])  # U x N x D
        else:
            # U x N x 3 x S x S: every row's gradient with respect to the faces' pixels
            pixel_grads = torch.zeros(len(needed), *faces.shape, dtype=faces.dtype, device=codes.device)
            for group, uses in groups.items():
                slots, columns = zip(*uses)
                pixel_grads[list(slots)] = _rows_gradient(outputs[group], faces, list(columns))
            (taken,) = torch.autograd.grad(faces, variable, grad_outputs=pixel_grads, is_grads_batched=True)
    gradients = torch.zeros(codes.shape[0], logits.shape[1], codes.shape[1], device=codes.device)  # N x R x D
    gradients[:, needed] = taken.transpose(0, 1).float() * held[needed].T[..., None]
    return logits, gradients


def _row_source(row: int, target_rows: list[int], kept_rows: list[int], hold_members: bool) -> tuple[int, int]:
    """(group, classifier column) of logit row `row` of _logits_and_gradients: group -1 for a row
    that is the members' mean (targets; kept rows without hold_members), m for member m's own
    reading of a kept attribute (hold_members: member-major, M x K rows)."""
    if row < len(target_rows):
        return -1, target_rows[row]
    row -= len(target_rows)
    if not hold_members:
        return -1, kept_rows[row]
    member, column = divmod(row, len(kept_rows))
    return member, kept_rows[column]


def _rows_gradient(output: torch.Tensor, inputs: torch.Tensor, columns: list[int]) -> torch.Tensor:
    """V x inputs.shape: the gradient of each listed column of the N x A `output`, summed over the
    N faces (each face's output depends on its own input only), batched in one backward pass."""
    picks = torch.zeros(len(columns), *output.shape, device=output.device)  # V x N x A
    picks[torch.arange(len(columns)), :, columns] = 1.0
    if len(columns) == 1:  # plainly: the batched machinery costs more than it saves for one row
        return torch.autograd.grad(output, inputs, grad_outputs=picks[0], retain_graph=True)[0][None]
    return torch.autograd.grad(output, inputs, grad_outputs=picks, is_grads_batched=True, retain_graph=True)[0]


def _kept_vectors(kept: Sequence[str], vectors: Mapping[str, torch.Tensor], codes: torch.Tensor) -> torch.Tensor:
    """K x D: the kept attributes' vectors (zero for one without a vector: its gradients alone hold it)."""
    rows = [vectors[name].float().to(codes.device) if name in vectors else codes.new_zeros(codes.shape[1])
            for name in kept]
    return torch.stack(rows) if rows else codes.new_zeros(0, codes.shape[1])


def _held_vectors(kept_grads: torch.Tensor, kept_vectors: torch.Tensor) -> torch.Tensor:
    """N x K x D: kept attribute k's vector on the faces where the guide holds it (some member's
    gradient row for k is not zero: the guide is not sure of it there), zero elsewhere."""
    faces, rows, dims = kept_grads.shape
    count = kept_vectors.shape[0]
    held = kept_grads.reshape(faces, rows // max(count, 1), count, dims).ne(0).any(3).any(1)  # N x K
    return kept_vectors[None] * held[..., None]


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _without(directions: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """N x T x D directions without their components in the span of each face's rows (N x K x D),
    exactly (QR in float64). A zero row (an output not held) takes nothing away."""
    if not rows.shape[1]:
        return directions
    basis, triangle = torch.linalg.qr(rows.double().transpose(1, 2))  # N x D x K, N x K x K
    # A zero column (or one in the span of those before it) has a zero on R's diagonal and an
    # arbitrary column of Q, which must not be projected out: such columns are dropped.
    reach = triangle.diagonal(dim1=1, dim2=2).abs()  # N x K
    basis = basis * (reach > 1e-9 * reach.amax(1, keepdim=True))[:, None, :]
    along = basis @ (basis.transpose(1, 2) @ directions.double().transpose(1, 2))  # N x D x T
    return (directions.double() - along.transpose(1, 2)).float()


def _damped_without(directions: torch.Tensor, rows: torch.Tensor, ridge: float) -> torch.Tensor:
    """N x T x D directions minus a ridge-damped projection onto each face's rows (N x K x D):
    d - R^T (R R^T + ridge x mean |r|^2 I)^-1 R d. A component along a strongly expressed
    combination of rows is removed almost wholly, one along a weak one (of the many that
    dozens of nearly dependent rows span) mostly left."""
    grads = rows.double()
    weights = _ridge_solve(grads, grads @ directions.double().transpose(1, 2), ridge)  # N x K x T
    return (directions.double() - (grads.transpose(1, 2) @ weights).transpose(1, 2)).float()


def _ridge_solve(grads: torch.Tensor, right: torch.Tensor, ridge: float) -> torch.Tensor:
    """N x K x C: (G G^T + ridge x mean |g|^2 I)^-1 right, per face; grads N x K x D (float64),
    right N x K x C. The ridge is relative to the rows' mean square, so it does not depend on
    the gradients' scale."""
    gram = grads @ grads.transpose(1, 2)  # N x K x K
    scale = ridge * gram.diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-12)  # N
    eye = torch.eye(gram.shape[1], dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(gram + scale[:, None, None] * eye, right)


def _target_step(directions: torch.Tensor, kept_grads: torch.Tensor, step_sizes: torch.Tensor,
                 ridge: float = 0.0) -> torch.Tensor:
    """N x D: each target's direction (N x T x D) without its components along the kept gradients
    (N x K x D; exactly, or damped by `ridge` when > 0), as a unit vector times its signed step
    size (N x T), summed over the targets."""
    kept = _damped_without(directions, kept_grads, ridge) if ridge > 0 and kept_grads.shape[1] else \
        _without(directions, kept_grads)
    return (_unit(kept) * step_sizes[..., None]).sum(1)


def _pull_back(kept_grads: torch.Tensor, drift: torch.Tensor, settings: GuidedSettings) -> torch.Tensor:
    """N x D: the least-squares move within span(kept gradients) that undoes each kept logit's
    drift beyond the tolerance (N x K), no longer than the drift it undoes warrants."""
    excess = torch.sign(drift) * (drift.abs() - settings.tolerance).clamp_min(0.0)  # N x K
    if not bool((excess != 0).any()):
        return torch.zeros(kept_grads.shape[0], kept_grads.shape[2], device=kept_grads.device)
    grads = kept_grads.double()  # N x K x D
    weights = _ridge_solve(grads, -excess.double()[..., None], settings.damping)  # N x K x 1
    return (grads.transpose(1, 2) @ weights)[..., 0].float()  # N x D


def pipeline_guided_edit(pipe: "FacePipeline", codes: torch.Tensor, strengths: Mapping[str, float],
                         keep: Sequence[str] = (), classifier: torch.nn.Module | None = None,
                         settings: GuidedSettings = GuidedSettings(), cancel: Callable[[], None] | None = None,
                         progress: bool = False) -> torch.Tensor:
    """guided_edit through a pipeline's decoder (bf16 where its runtime is), with strengths in
    the unit of its attribute vectors; classifier None: the shipped one (model.shipped)."""
    classifier = classifier if classifier is not None else _shipped_guide(str(pipe.model.device))
    vectors = pipe.model.attributes  # the edited attributes' and the kept ones'
    guide = Guide(pipe.decoder, classifier, pipe.runtime.autocast_dtype)
    return guided_edit(guide, codes, strengths, vectors, keep, settings, cancel, progress)


@functools.lru_cache(maxsize=4)
def _shipped_guide(device: str) -> torch.nn.Module:
    """The shipped classifier on `device`, loaded once per process instead of on every guided
    edit (a GUI slider move, an API request). Shared between threads: guided edits only read it
    (eval mode; gradients are taken with respect to the codes, never stored in its weights)."""
    from ..model.shipped import load_shipped

    return load_shipped(device)


EDIT_METHODS = ("linear", "guided")


def prepare_edits(pipe: "FacePipeline", strengths: Strengths | None, keep: Sequence[str], keep_mode: str,
                  method: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The FacePipeline methods' one edit path: N x D codes -> edited codes. Checks everything
    first (method, names; "linear" resolves its offset now), so a bad request fails before any
    image work. "linear" adds the offset (strengths must be numbers); "guided" walks each face
    with the shipped classifier (keep_mode does not apply: kept outputs are held directly)."""
    if method not in EDIT_METHODS:
        raise UserError(f"method must be 'linear' or 'guided', not {method!r}")
    if method == "linear":
        if KEEP_EVERYTHING in keep:
            raise UserError("keep='*' (everything else) needs method='guided': a linear offset cannot hold "
                            "every other attribute; name the attributes to keep instead")
        offset = pipe.resolve_attributes(strengths, keep, keep_mode)
        return lambda codes: codes + offset
    for name in [*(strengths or {}), *(k for k in keep if k != KEEP_EVERYTHING)]:
        if name not in pipe.model.attributes:
            raise pipe._unknown_attribute(name)
    return lambda codes: pipeline_guided_edit(pipe, codes, dict(strengths or {}), keep)


def apply_edits(pipe: "FacePipeline", codes: torch.Tensor, strengths: Strengths | None, keep: Sequence[str],
                keep_mode: str, method: str) -> torch.Tensor:
    """prepare_edits, applied to N x D codes at once."""
    return prepare_edits(pipe, strengths, keep, keep_mode, method)(codes)
