"""Conditional edits: move along some attribute directions while keeping others unchanged.

`conditional_offset(vectors, strengths, keep, mode)` is the latent offset (a D vector) behind
`FacePipeline.resolve_attributes(strengths, keep=..., keep_mode=...)`. Four modes:

- "auto" (the default): "group" where it leaves enough of every edit, else "orthogonal". Plain
  projection keeps the kept vectors' own directions but not what the decoder draws with
  their correlated neighbours (a smile also lives in High_Cheekbones and Mouth_Slightly_Open),
  so where the group can be removed without removing the edit, it is.

- "orthogonal": each edited vector minus its projection onto span(kept vectors), computed
  exactly (QR in float64), then rescaled to the edited vector's length so strength 1 stays a
  step as long as the plain vector's. The offset's dot product with every kept vector is 0
  up to float32 rounding. This is first-order: the decoder is not linear, so a kept attribute
  can still drift at large strengths.
- "group": as "orthogonal", but the kept set grows by every attribute whose vector has
  |cosine| >= GROUP_COSINE with a kept one (its correlated group: Smiling brings
  High_Cheekbones, Mouth_Slightly_Open, Rosy_Cheeks on celeba64-original), except attributes
  that are themselves that close to an edited vector, which would remove the edit itself.
  Where the group's span holds most of an edited vector (less than GROUP_LEAST of its length
  left: Smiling keeping Male's group of 13 on celeba64-original keeps 16%), it is an error.
- "decoded": "orthogonal", then a second-order correction solved in pixels. For each kept
  attribute k, its pixel signature d_k is the mean change of CORRECTION_SAMPLES decoded faces
  from the prior when u_k (the kept vector) is added. An offset's mean image change is
  regressed on the signatures: units(offset) = lstsq([d_k], mean(g(z + offset) - g(z))), how
  many units of each kept attribute it adds as seen in pixels. Its first-order part, the
  central difference of units along LINEAR_STEP x offset scaled up, is what a linear decoder
  would give, and projection already made the edit orthogonal to the kept vectors; what the
  nonlinearity adds on top, units(offset) minus that line, is removed by moving the offset
  within span(kept vectors), a Newton step per round (adding u_k adds one unit of k by
  construction), CORRECTION_STEPS rounds. So the correction depends on the strength and the
  decoder, is deterministic (fixed seed), and is NOT exactly orthogonal to the kept vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from ..edit_choices import GROUP_COSINE, KEEP_MODES
from ..errors import UserError

# "group" refuses an edit that keeps less of its direction than this (cosine with the plain vector).
GROUP_LEAST = 0.3
CORRECTION_SAMPLES = 32  # faces the "decoded" mode averages over
CORRECTION_STEPS = 3
CORRECTION_SEED = 0
LINEAR_STEP = 0.1  # the fraction of the edit whose central difference gives the first-order readout

Decode = Callable[[torch.Tensor], torch.Tensor]  # N x D codes -> N x 3 x S x S images in [0, 1]


class KeepTooMuchError(UserError):
    """Keeping the attributes would leave too little of an edited direction."""


def check_keep(strengths: Mapping[str, float], keep: Sequence[str], mode: str) -> list[str]:
    """The kept names without repeats; errors for a bad mode or a name both edited and kept."""
    if mode not in KEEP_MODES:
        raise UserError(f"keep mode must be one of {', '.join(KEEP_MODES)}, not {mode!r}")
    both = [name for name in keep if name in strengths]
    if both:
        raise UserError(f"{', '.join(both)} is both edited and kept unchanged; an attribute cannot be both: "
                        f"remove it from keep (or from the edits)")
    return list(dict.fromkeys(keep))


def orthonormal_basis(vectors: Sequence[torch.Tensor]) -> torch.Tensor:
    """D x r orthonormal basis (float64) of the span of the vectors; r <= len(vectors)."""
    stacked = torch.stack([v.double() for v in vectors], 1)  # D x k
    q, r = torch.linalg.qr(stacked)
    scale = r.diagonal().abs().max().clamp_min(1e-300)
    return q[:, r.diagonal().abs() > 1e-9 * scale]  # drop directions that repeat others


def project_out(vector: torch.Tensor, basis: torch.Tensor, name: str = "the edit",
                kept: str = "the kept attributes", least: float = 1e-6) -> torch.Tensor:
    """`vector` without its components in span(basis), rescaled to the vector's length (float64).
    Fails when less than `least` of its length is left: what is left is no longer that edit."""
    v = vector.double()
    residual = v - basis @ (basis.T @ v)
    residual = residual - basis @ (basis.T @ residual)  # a second pass takes the rounding left by the first
    left = float(residual.norm() / v.norm())
    if left < 1e-6:
        raise UserError(f"{name} lies in the span of {kept}: nothing is left after removing their directions; "
                        f"keep fewer attributes")
    if left < least:
        raise KeepTooMuchError(f"keeping {kept} unchanged leaves {left:.0%} of {name}'s direction, which is no "
                        f"longer {name}; use keep mode 'orthogonal' or keep fewer attributes")
    return residual * (v.norm() / residual.norm())


def group_of(vectors: Mapping[str, torch.Tensor], keep: Sequence[str], edited: Sequence[str],
             threshold: float = GROUP_COSINE) -> list[str]:
    """The kept names plus their correlated group (|cosine| >= threshold with a kept vector),
    leaving out attributes as close to an edited vector (projecting those out removes the edit)."""
    def cosine(a: str, b: str) -> float:
        return float(torch.nn.functional.cosine_similarity(vectors[a].double(), vectors[b].double(), dim=0))

    group = list(keep)
    for name in vectors:
        if name in group or name in edited:
            continue
        near_kept = any(abs(cosine(name, k)) >= threshold for k in keep)
        near_edit = any(abs(cosine(name, e)) >= threshold for e in edited)
        if near_kept and not near_edit:
            group.append(name)
    return group


def conditional_offset(vectors: Mapping[str, torch.Tensor], strengths: Mapping[str, float],
                       keep: Sequence[str], mode: str = "orthogonal", decode: Decode | None = None,
                       signatures: PixelSignatures | None = None) -> torch.Tensor:
    """Sum of strength x (edited vector made to keep the kept attributes): a D float32 vector.
    Names must be valid keys of `vectors` (the pipeline checks them with a friendly message).
    "decoded" needs `decode`, or the kept attributes' `signatures` measured already (reused
    across strengths)."""
    keep = check_keep(strengths, keep, mode)
    if mode == "auto":
        try:
            return conditional_offset(vectors, strengths, keep, "group")
        except KeepTooMuchError:
            return conditional_offset(vectors, strengths, keep, "orthogonal")
    edited = [name for name, s in strengths.items() if float(s) != 0.0]
    reference = next(iter(vectors.values()))
    if not edited:
        return torch.zeros_like(reference, dtype=torch.float32)
    if not keep:
        return sum(float(strengths[n]) * vectors[n].double() for n in edited).float()
    kept = group_of(vectors, keep, edited) if mode == "group" else keep
    basis = orthonormal_basis([vectors[name] for name in kept])
    least = GROUP_LEAST if mode == "group" else 0.0
    described = ", ".join(keep) + (f" and their correlated group ({', '.join(kept[len(keep):])})"
                                   if len(kept) > len(keep) else "")
    offset = sum(float(strengths[n]) * project_out(vectors[n], basis, n, described, least) for n in edited)
    if mode == "decoded":
        if signatures is None and decode is None:
            raise UserError("keep mode 'decoded' needs the decoder; call it through FacePipeline")
        offset = decoded_correction(offset, signatures or PixelSignatures([vectors[name] for name in keep], decode))
    return offset.float().to(reference.device)


class PixelSignatures:
    """The kept attributes as seen in pixels, over `samples` faces from the prior (fixed seed).

    signatures: P x k, column k the mean change of the decoded faces when u_k is added.
    `units(offset)` regresses the faces' mean change under `offset` on them: how many units
    of each kept attribute the offset adds, as seen in pixels (k floats).
    """

    @torch.inference_mode()
    def __init__(self, kept: Sequence[torch.Tensor], decode: Decode, samples: int = CORRECTION_SAMPLES,
                 seed: int = CORRECTION_SEED) -> None:
        self.decode = decode
        self.kept = torch.stack([u.double() for u in kept], 1)  # D x k
        generator = torch.Generator().manual_seed(seed)
        self.codes = torch.randn(samples, self.kept.shape[0], generator=generator, dtype=torch.float64)
        self.codes = self.codes.to(self.kept.device)  # n x D
        self.base = decode(self.codes.float()).double()  # n x 3 x S x S
        self.signatures = torch.stack([self.mean_change(u) for u in self.kept.T], 1)  # P x k

    @torch.inference_mode()
    def mean_change(self, delta: torch.Tensor) -> torch.Tensor:
        """D offset -> P: the mean pixel change of the faces."""
        moved = self.decode((self.codes + delta.double()).float()).double()
        return (moved - self.base).flatten(1).mean(0)

    def units(self, offset: torch.Tensor) -> torch.Tensor:
        return torch.linalg.lstsq(self.signatures, self.mean_change(offset)[:, None]).solution[:, 0]


def decoded_correction(offset: torch.Tensor, signatures: PixelSignatures,
                       steps: int = CORRECTION_STEPS) -> torch.Tensor:
    """The offset moved within span(kept) until the kept attributes' pixel readouts lie on the
    straight line they follow for small steps (see the module docstring)."""
    offset = offset.double()
    small = LINEAR_STEP * offset
    target = (signatures.units(small) - signatures.units(-small)) / (2 * LINEAR_STEP)  # k: first-order readout
    for _ in range(steps):
        offset = offset - signatures.kept @ (signatures.units(offset) - target)
    return offset
