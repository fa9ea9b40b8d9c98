"""Likeness on real photos: framing accuracy, face-region PSNR/SSIM of the reconstruction, time.

    python benchmarks/photos.py                       # ../shared/photos, baseline vs default
    python benchmarks/photos.py --try lr=0.2,face_weight=5 --try starts=4,probe_steps=15
    python benchmarks/photos.py --classifier CLASSIFIER_DIR --tune "" --tune steps=20,locality_weight=3

--tune (repeatable; changes to facevae.inference.tuning.DEFAULT_TUNING, "" for the default) runs
the pivotal-tuning rows instead (benchmarks/_photo_tuning.py): the untuned decoder and one row
per tuning setting, with an independent attribute classifier (`facevae classifier train
--data ../shared/celeba-sample --out DIR --attributes Male,Smiling,Pale_Skin`) judging identity
and edit strength.

For every photo in --photos (default ../shared/photos): whether a face was found and how it
was framed (YuNet from --detector, default ../shared/face-detector), the landmark error of the
framed crop (YuNet run again on the 178 x 218 crop; mean distance of its five landmarks from
facevae.inference.face.CELEBA_LANDMARKS, and of the two eyes alone, in frame pixels), and for
each inversion setting (BASELINE, the earlier optimisation; the library's defaults,
InversionSettings(); any --try, which may also try several starting codes per photo) the
face-region PSNR and SSIM of the reconstruction against the framed photo at the model's input
size, and the seconds from photo file to reconstruction (read, frame, invert, decode). Settings
run interleaved per photo, so a busy machine slows them alike. The model is the pretrained
decoder-only celeba64-original, installed from --pretrained (default ../shared) into a temporary
FACEVAE_HOME unless --model names another.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from _machine import machine_line
from facevae import imaging
from facevae.inference.face import CELEBA_LANDMARKS, FACE_REGION, align_face, detect_landmarks, landmark_error
from facevae.inference.inversion import DECODER_ONLY_STEPS, InversionSettings, face_weights, invert, refine
from facevae.inference.pipeline import FacePipeline
from facevae.model.bundle import load_bundle

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
MOUTH_REGION = (62, 140, 116, 170)  # the mouth in the CelebA frame, where a Smiling edit acts


@dataclass(frozen=True)
class Variant:
    """An inversion setting to measure: the library's settings, and (an experiment only here)
    several starting codes per photo: the usual one and starts - 1 draws from N(0, start_scale^2),
    each fitted for probe_steps steps, the best one per photo then fitted for the remaining steps."""

    settings: InversionSettings = InversionSettings()
    starts: int = 1
    probe_steps: int = 10
    start_scale: float = 1.0


# The earlier optimisation: fixed step size, every pixel alike, a stronger prior.
BASELINE = Variant(InversionSettings(lr=0.1, prior_weight=0.01, face_weight=0.0, lr_schedule="constant"))
DEFAULT = Variant()


def parse_try(text: str) -> Variant:
    """'lr=0.2,face_weight=5' or 'starts=4,probe_steps=15' -> the defaults with those fields changed."""
    types = {f.name: f.type for f in fields(InversionSettings)}
    starts = {f.name: f.type for f in fields(Variant) if f.name != "settings"}
    changes, start_changes = {}, {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        kind = types.get(key) or starts.get(key)
        if kind is None:
            raise SystemExit(f"--try: unknown setting {key!r}; settings: {', '.join([*types, *starts])}")
        parsed = value if kind == "str" else (int(value) if kind == "int" else float(value))
        (changes if key in types else start_changes)[key] = parsed
    return Variant(replace(InversionSettings(), **changes), **start_changes)


def invert_variant(pipe: FacePipeline, images: torch.Tensor, variant: Variant) -> torch.Tensor:
    """N x 3 x S x S framed photos -> N x D codes, as `variant` fits them (decoder-only model)."""
    if variant.starts == 1:
        return invert(pipe.model, images, 0, pipe.decoder, variant.settings)
    n, k, steps = len(images), variant.starts, DECODER_ONLY_STEPS
    probe = min(variant.probe_steps, steps)
    weights = face_weights(pipe.model.preprocessing, variant.settings.face_weight)
    draws = torch.randn(n, k - 1, pipe.latent_dim, generator=torch.Generator().manual_seed(0)) * variant.start_scale
    candidates = torch.cat([torch.zeros(n, 1, pipe.latent_dim), draws], 1).flatten(0, 1)  # (N*K) x D, photo-major
    repeated = images.repeat_interleave(k, 0)
    fitted = refine(pipe.decoder, repeated, candidates, probe, variant.settings, weights)
    with torch.no_grad():
        losses = ((weights * (pipe.decoder(fitted) - repeated) ** 2).flatten(1).mean(1)
                  + variant.settings.prior_weight * (fitted**2).mean(1))
    best = fitted.view(n, k, -1)[torch.arange(n), losses.view(n, k).argmin(1)]  # N x D
    return refine(pipe.decoder, images, best, steps - probe, variant.settings, weights)


def face_mask(pipe: FacePipeline, region: tuple[int, int, int, int] = FACE_REGION) -> np.ndarray:
    """S x S bool: a rectangle of the CelebA frame (default FACE_REGION) at the model's input,
    through the bundle's preprocessing."""
    from PIL import Image, ImageDraw

    from facevae.inference.face import CELEBA_SIZE

    mask = Image.new("RGB", CELEBA_SIZE, (0, 0, 0))
    ImageDraw.Draw(mask).rectangle(region, fill=(255, 255, 255))
    return imaging.preprocess(mask, pipe.model.preprocessing)[0].numpy() > 0.5


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """a, b: S x S x 3 in [0, 1]; over the masked pixels."""
    mse = float(((a - b) ** 2)[mask].mean())
    return 10 * np.log10(1 / max(mse, 1e-12))


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM (7 x 7 uniform windows, on luma) over the mask's bounding box."""
    import cv2

    ys, xs = np.nonzero(mask)
    luma = [(img[ys.min():ys.max() + 1, xs.min():xs.max() + 1] @ np.array([0.299, 0.587, 0.114])).astype(np.float64)
            for img in (a, b)]
    x, y = luma
    blur = lambda v: cv2.blur(v, (7, 7))  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return float((((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))).mean())


def frame_checks(path: Path, detector: Path) -> tuple[str, float, float, list[str]]:
    aligned = align_face(imaging.read_image(path), source=path.name, detector=detector)
    again = detect_landmarks(aligned.image, detector)
    if not again:
        return "yes", float("nan"), float("nan"), aligned.notes
    points = again[0][1]
    eyes = float(np.linalg.norm(points[:2] - CELEBA_LANDMARKS[:2], axis=1).mean())
    return "yes", landmark_error(points), eyes, aligned.notes


def reconstruct(pipe: FacePipeline, path: Path, detector: Path, variant: Variant):
    """Photo file -> (framed model input S x S x 3, reconstruction S x S x 3, seconds)."""
    start = time.perf_counter()
    aligned = align_face(imaging.read_image(path), source=path.name, detector=detector)
    original = imaging.preprocess(aligned.image, pipe.model.preprocessing)[None]
    codes = invert_variant(pipe, original, variant)
    recon = pipe.decode_tensor(codes)
    seconds = time.perf_counter() - start
    return original[0].permute(1, 2, 0).numpy(), recon[0].permute(1, 2, 0).numpy(), seconds


def quality_sweep(pipe: FacePipeline, photos: list[Path], detector: Path, variants: dict, mask: np.ndarray) -> None:
    """Mean face-region PSNR / SSIM per setting, all photos in one batch (each image's loss is its own)."""
    framed = [align_face(imaging.read_image(p), source=p.name, detector=detector).image for p in photos]
    originals = torch.stack([imaging.preprocess(image, pipe.model.preprocessing) for image in framed])
    print(f"{machine_line()}\nquality only: face-region PSNR dB / SSIM, mean over {len(photos)} photos")
    for name, variant in variants.items():
        recon = pipe.decode_tensor(invert_variant(pipe, originals, variant))
        pairs = [(o.permute(1, 2, 0).numpy(), r.permute(1, 2, 0).numpy()) for o, r in zip(originals, recon)]
        values = np.array([(psnr(o, r, mask), ssim(o, r, mask)) for o, r in pairs])
        print(f"{values[:, 0].mean():6.2f} / {values[:, 1].mean():.3f}  {name}", flush=True)


def tuning_benchmark(pipe: FacePipeline, photos: list[Path], args: argparse.Namespace, mask: np.ndarray) -> None:
    from _photo_tuning import parse_tune, print_table, tuning_rows
    from facevae.model import classifier as attribute_classifier

    if args.classifier is None:
        raise SystemExit("--tune needs --classifier DIR (an attribute classifier with Male, Smiling and Pale_Skin)")
    settings = {text or "default": parse_tune(text) for text in args.tunes}
    classifier = attribute_classifier.load(args.classifier)
    load_before = os.getloadavg()[0]
    unchanged = mask & ~face_mask(pipe, MOUTH_REGION)  # what a Smiling edit should leave alone
    rows = tuning_rows(pipe, photos, args.detector, settings, classifier, (mask, unchanged), psnr, ssim)
    print(f"\nfacevae photos benchmark, pivotal tuning: {len(photos)} photos in {args.photos}; "
          f"{machine_line()}; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print_table(rows, settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=SHARED / "photos")
    parser.add_argument("--detector", type=Path, default=SHARED / "face-detector" / "face_detection_yunet_2026may.onnx")
    parser.add_argument("--pretrained", type=Path, default=SHARED / "pretrained" / "original-celeba64")
    parser.add_argument("--model", default=None, help="a bundle folder (default: install --pretrained)")
    parser.add_argument("--try", dest="tries", action="append", default=[], metavar="KEY=VALUE,...",
                        help="another inversion setting, as changes to the default (repeatable)")
    parser.add_argument("--only-tries", action="store_true", help="sweeps: only the --try settings")
    parser.add_argument("--quality-only", action="store_true",
                        help="sweeps: all photos inverted in one batch per setting; PSNR/SSIM only, no times")
    parser.add_argument("--tune", dest="tunes", action="append", default=[], metavar="KEY=VALUE,...",
                        help="a pivotal-tuning setting, as changes to the default ('' for it; repeatable)")
    parser.add_argument("--classifier", type=Path, default=None,
                        help="an attribute classifier folder with Male, Smiling and Pale_Skin (for --tune)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N photos")
    args = parser.parse_args()

    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)[:args.limit]
    with tempfile.TemporaryDirectory() as home:
        if args.model is None:
            from facevae.hub import install
            from facevae.interop.loading import convert_published

            os.environ["FACEVAE_HOME"] = home
            args.model = install.install("celeba64-original", source_dir=args.pretrained, progress=False,
                                         convert=convert_published)
        pipe = FacePipeline(load_bundle(args.model))
    variants = {} if args.only_tries else {"baseline": BASELINE, "default": DEFAULT}
    variants.update({text: parse_try(text) for text in args.tries})
    mask = face_mask(pipe)
    if args.tunes:
        return tuning_benchmark(pipe, photos, args, mask)
    if args.quality_only:
        return quality_sweep(pipe, photos, args.detector, variants, mask)
    load_before = os.getloadavg()[0]
    reconstruct(pipe, photos[0], args.detector, DEFAULT)  # warm-up: detector, decoder, allocator
    rows, scores = [], {name: [] for name in variants}
    for path in photos:
        found, error, eye_error, notes = frame_checks(path, args.detector)
        row = [path.name, found, f"{error:.1f}", f"{eye_error:.1f}"]
        for name, variant in variants.items():
            original, recon, seconds = reconstruct(pipe, path, args.detector, variant)
            result = (psnr(original, recon, mask), ssim(original, recon, mask), seconds)
            scores[name].append(result)
            row.append(f"{result[0]:.2f} / {result[1]:.3f} / {seconds:.2f}s")
        rows.append((row, notes))
        print("  " + " | ".join(row), flush=True)  # progress: a busy machine makes this slow
    print(f"\nfacevae photos benchmark: {len(photos)} photos in {args.photos}, {DECODER_ONLY_STEPS} steps "
          f"(decoder-only model), precision {pipe.precision}\n{machine_line()}; load average "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print("\nlandmarks: YuNet again on the framed 178 x 218 crop, mean distance from CelebA's positions (px)")
    print("cells: face-region PSNR dB / SSIM / seconds photo file -> reconstruction")
    header = ["photo", "face", "landmarks", "eyes", *variants]
    widths = [20, 5, 9, 5, *[max(28, len(n)) for n in variants]]
    print("\n" + " ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row, notes in rows:
        print(" ".join(c.ljust(w) for c, w in zip(row, widths)) + (f"  ({'; '.join(notes)})" if notes else ""))
    summary = ["mean / mean / median", "", "", ""]
    for name in variants:
        values = np.array(scores[name])
        summary.append(f"{values[:, 0].mean():.2f} / {values[:, 1].mean():.3f} / "
                       f"{statistics.median(values[:, 2]):.2f}s")
    print(" ".join(c.ljust(w) for c, w in zip(summary, widths)))
    for name, variant in variants.items():
        print(f"  {name}: {variant}")


if __name__ == "__main__":
    main()
