"""Pivotal-tuning rows for benchmarks/photos.py: likeness, identity and edit strength per setting.

For every photo: frame it (YuNet), invert it with the default inversion (the pivot), then for
the untuned decoder and for each tuning setting: face-region PSNR / SSIM of the reconstruction,
whether an independent attribute classifier (trained on ../shared/celeba-sample with
`facevae classifier train`, never the model's own vectors) gives photo and reconstruction the
same gender (Male > 0.5) and the same Pale_Skin verdict, the face's mean colour distance
(0-255 RGB), and the edit strength: (P(+2) - P(-2)) / 2 of the classifier's Smiling and Male
probability for the pivot moved by +-2 times the attribute vector, drawn as FacePipeline.edit
draws a tuned photo's edits (redrawn where they act, the setting's redraw_change). Seconds are photo file ->
tuned decoder (framing, inversion, tuning); memory is the process's peak RSS after the photo.
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

from facevae import imaging
from facevae.inference.face import align_face
from facevae.inference.inversion import InversionSettings, face_weights, invert
from facevae.inference.pipeline import FacePipeline
from facevae.inference.tuning import DEFAULT_TUNING, TuningSettings, redrawn, tune
from facevae.model.fast_decoder import FastDecoder

EDITED = ("Smiling", "Male")
STRENGTH = 2.0


def parse_tune(text: str) -> TuningSettings:
    """'steps=20,locality_weight=3,layers=stages.3+to_rgb' -> DEFAULT_TUNING with those fields changed."""
    kinds = {f.name: f.type for f in fields(TuningSettings)}
    changes: dict = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in kinds:
            raise SystemExit(f"--tune: unknown setting {key!r}; settings: {', '.join(kinds)}")
        kind = kinds[key]
        changes[key] = (tuple(filter(None, value.split("+"))) if key == "layers" else value if kind == "str"
                        else int(value) if kind == "int" else float(value))
    return replace(DEFAULT_TUNING, **changes)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@torch.inference_mode()
def _scores(classifier, images: torch.Tensor) -> dict[str, torch.Tensor]:
    probabilities = classifier.probabilities(images)
    return {name: probabilities[:, i] for i, name in enumerate(classifier.attribute_names)}


def _measure(pipe: FacePipeline, decoder: torch.nn.Module, pivot: torch.Tensor, photo: torch.Tensor, classifier,
             masks: tuple[np.ndarray, np.ndarray], psnr, ssim, redraw_change: float = 0.0) -> dict[str, float]:
    """One decoder's likeness and edit strength for one photo. masks: the face region, and the
    face without the mouth (where the Smiling +2 edit is compared with the photo). Edits are
    redrawn where they act, as FacePipeline.edit draws a tuned photo's (redraw_change > 0)."""
    mask, unchanged = masks
    vectors = [pipe.model.attributes[name] for name in EDITED]
    codes = torch.cat([pivot] + [pivot + s * STRENGTH * v for v in vectors for s in (1, -1)])  # 5 x D
    with torch.inference_mode():
        drawn = decoder(codes).float()
        if redraw_change > 0:
            untouched = pipe.decoder(codes).float()
            drawn = torch.cat([drawn[:1], redrawn(drawn, untouched, redraw_change)])
    photo_scores, drawn_scores = _scores(classifier, photo), _scores(classifier, drawn)
    original, recon = photo[0].permute(1, 2, 0).numpy(), drawn[0].permute(1, 2, 0).numpy()
    row = {"psnr": psnr(original, recon, mask), "ssim": ssim(original, recon, mask),
           "colour": float(np.linalg.norm(original[mask].mean(0) - recon[mask].mean(0)) * 255),
           "edit psnr": psnr(original, drawn[1].permute(1, 2, 0).numpy(), unchanged)}
    for name in ("Male", "Pale_Skin"):
        row[f"same {name}"] = float((photo_scores[name][0] > 0.5) == (drawn_scores[name][0] > 0.5))
    for i, name in enumerate(EDITED):
        row[f"{name} edit"] = float(drawn_scores[name][1 + 2 * i] - drawn_scores[name][2 + 2 * i]) / 2
    return row


def tuning_rows(pipe: FacePipeline, photos: list[Path], detector: Path, settings: dict[str, TuningSettings],
                classifier, masks: tuple[np.ndarray, np.ndarray], psnr, ssim) -> dict[str, list[dict[str, float]]]:
    """Per setting ("untuned" first), one measurement dict per photo; prints a line per photo."""
    weights = face_weights(pipe.model.preprocessing, InversionSettings().face_weight)
    directions = torch.stack(list(pipe.model.attributes.values()))
    rows: dict[str, list[dict[str, float]]] = {"untuned": [], **{name: [] for name in settings}}
    for path in photos:
        start = time.perf_counter()
        aligned = align_face(imaging.read_image(path), source=path.name, detector=detector)
        photo = imaging.preprocess(aligned.image, pipe.model.preprocessing)[None]
        pivot = invert(pipe.model, photo, 0, pipe.decoder, InversionSettings())
        inverted = time.perf_counter() - start
        rows["untuned"].append({**_measure(pipe, pipe.decoder, pivot, photo, classifier, masks, psnr, ssim),
                                "seconds": inverted, "memory": _peak_rss_mib()})
        for name, setting in settings.items():
            start = time.perf_counter()
            tuned = tune(pipe.model.decoder, pivot, photo, weights, directions, setting, seed=0, reference=pipe.decoder,
                         autocast=pipe.runtime.autocast_dtype)
            seconds = inverted + time.perf_counter() - start
            drawing = FastDecoder(tuned, pipe.precision).eval()  # drawn as the pipeline draws a tuned photo
            row = _measure(pipe, drawing, pivot, photo, classifier, masks, psnr, ssim, setting.redraw_change)
            rows[name].append({**row, "seconds": seconds, "memory": _peak_rss_mib()})
        print(f"  {path.name}: " + " | ".join(f"{name} {r[-1]['psnr']:.1f} dB, smile {r[-1]['Smiling edit']:+.2f}"
                                                for name, r in rows.items()), flush=True)
    return rows


def print_table(rows: dict[str, list[dict[str, float]]], settings: dict[str, TuningSettings]) -> None:
    print("\nper setting (mean over photos; agreement counts; median seconds; the process's peak RSS so far):")
    print("| setting | face PSNR dB / SSIM | Smiling +2: PSNR outside the mouth | same gender | same Pale_Skin | "
          "face colour distance | Smiling edit | Male edit | s per photo | peak MiB |\n"
          "|---|---|---|---|---|---|---|---|---|---|")
    for name, values in rows.items():
        mean = {key: statistics.fmean(v[key] for v in values) for key in values[0]}
        count = len(values)
        print(f"| {name} | {mean['psnr']:.2f} / {mean['ssim']:.3f} | {mean['edit psnr']:.2f} | "
              f"{sum(v['same Male'] for v in values):.0f}/{count}"
              f" | {sum(v['same Pale_Skin'] for v in values):.0f}/{count} | {mean['colour']:.1f} | "
              f"{mean['Smiling edit']:.3f} | {mean['Male edit']:.3f} | "
              f"{statistics.median(v['seconds'] for v in values):.2f} | {max(v['memory'] for v in values):.0f} |")
    for name, setting in settings.items():
        print(f"  {name}: {setting}")
