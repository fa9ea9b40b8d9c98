"""What `keep` does to the edit directions of a model: the figures in docs/usage.md
("Conditional edits").

    python benchmarks/keep_directions.py [--model celeba64-original]

For each (edited, kept) pair it prints, from the attribute vectors alone: the cosine between
the edited and kept vectors, the kept attribute's correlated group (keep mode "group"), and
how much of the edited direction each mode leaves (cosine with the plain vector; "refused"
where "group" leaves under directions.GROUP_LEAST). Then, with the decoder, the "decoded"
mode's correction at each strength, as its coefficient on each kept vector (the offset's
component in span(kept), which "orthogonal" leaves at 0). No timings: nothing here is a
speed figure.
"""

from __future__ import annotations

import argparse

import torch

from facevae.errors import UserError
from facevae.inference import directions
from facevae.inference.pipeline import FacePipeline

PAIRS = (("Male", ("Smiling",)), ("Smiling", ("Male",)), ("Eyeglasses", ("Male", "Young")))
STRENGTHS = (-3.0, -1.0, 1.0, 3.0)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


def geometry_rows(pipe: FacePipeline) -> None:
    vectors = pipe.model.attributes
    print("| edited | kept | cosine(edited, kept) | orthogonal keeps | group adds | group keeps |")
    print("|---|---|---|---|---|---|")
    for edited, kept in PAIRS:
        between = ", ".join(f"{cosine(vectors[edited], vectors[k]):+.2f}" for k in kept)
        kept_left = cosine(pipe.resolve_attributes({edited: 1.0}, kept), vectors[edited])
        group = directions.group_of(vectors, kept, [edited])[len(kept):]
        try:
            group_left = f"{cosine(pipe.resolve_attributes({edited: 1.0}, kept, 'group'), vectors[edited]):.2f}"
        except UserError:
            group_left = "refused"
        print(f"| {edited} | {', '.join(kept)} | {between} | {kept_left:.2f} | {', '.join(group) or '-'} "
              f"| {group_left} |")


def correction_rows(pipe: FacePipeline) -> None:
    vectors = pipe.model.attributes
    print("\n| edited | kept | " + " | ".join(f"s={s:+g}" for s in STRENGTHS) + " |")
    print("|---|---|" + "---|" * len(STRENGTHS))
    for edited, kept in PAIRS:
        basis = torch.stack([vectors[k].double() for k in kept], 1)  # D x k
        cells = []
        for strength in STRENGTHS:
            offset = pipe.resolve_attributes({edited: strength}, kept, "decoded").double()
            coefficients = torch.linalg.lstsq(basis, offset[:, None]).solution[:, 0]  # k
            cells.append(" ".join(f"{float(c):+.3f}" for c in coefficients))
        print(f"| {edited} | {', '.join(kept)} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="celeba64-original")
    args = parser.parse_args()
    pipe = FacePipeline.load(args.model, precision="fp32")
    print(f"model {args.model}: {len(pipe.attribute_names)} attribute vectors, latent size {pipe.latent_dim}\n")
    geometry_rows(pipe)
    correction_rows(pipe)


if __name__ == "__main__":
    main()
