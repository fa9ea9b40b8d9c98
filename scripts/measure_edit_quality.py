"""Measure a registry model's per-attribute linear edit quality and store it as package data
(src/facevae/hub/edit_quality/NAME.json), which the CLI, GUI and API read to mark weak attributes
(for any other model, `facevae evaluate --record-quality` stores the same record in its bundle).

    python scripts/measure_edit_quality.py CODES.npy [--model celeba64-original] [--classifier DIR]

CODES.npy: N x D codes of real faces (e.g. inverted held-out faces); the judge is the shipped
classifier unless --classifier names another (it only judges: linear edits are not guided).
Success and leaks are facevae.evaluation.edits.score_edits' (strength -2 to +2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facevae.evaluation.edits import score_edits
from facevae.inference.edit_quality import quality_record
from facevae.inference.pipeline import FacePipeline
from facevae.model import classifier as clf
from facevae.model.shipped import load_shipped

OUT = Path(__file__).resolve().parents[1] / "src" / "facevae" / "hub" / "edit_quality"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("codes")
    parser.add_argument("--model", default="celeba64-original")
    parser.add_argument("--classifier", default=None)
    args = parser.parse_args()
    pipe = FacePipeline.load(args.model, device="cpu")
    judge = clf.load(args.classifier) if args.classifier else load_shipped()
    codes = pipe.as_latents(np.load(args.codes))
    scores = score_edits(pipe, judge, codes, label=args.model)
    record = quality_record(args.model, [score.as_dict() for score in scores], len(codes),
                            args.classifier or "the shipped classifier (celeba64-attributes)",
                            "real faces: the CelebA sample's held-out test split, inverted")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.model}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["attributes"], indent=1))


if __name__ == "__main__":
    main()
