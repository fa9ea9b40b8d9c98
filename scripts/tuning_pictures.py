"""Before/after pictures of pivotal tuning: photo, reconstruction and edit, untuned and tuned.

    python scripts/tuning_pictures.py                          # docs/images/tuning.png (generated "photos")
    python scripts/tuning_pictures.py --photos ../shared/photos --out /tmp/tuning-photos.png

One row per photo: the photo as the model sees it, then the untuned decoder's reconstruction
and edit, then the tuned decoder's (FacePipeline.edit with tune_steps=0 and with the default).
Without --photos the "photos" are faces the model draws, with their colours and contrast
changed and sharpened so that no code draws them exactly (the docs may only show generated
faces); pictures of real photos are made locally with --photos and must not be committed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from facevae import imaging
from facevae.inference.pipeline import FacePipeline

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def altered_faces(pipe: FacePipeline, seeds: list[int]) -> list[Image.Image]:
    """Faces the model draws, recoloured, with more contrast and sharpened: off the model's range."""
    faces = []
    for seed in seeds:
        face = Image.fromarray(pipe.generate(n=1, seed=seed, temperature=0.8).images[0])
        red, green, blue = face.split()
        face = Image.merge("RGB", (blue, green, red) if seed % 2 else (green, red, blue))  # another skin and hair
        face = ImageEnhance.Contrast(face).enhance(1.4).filter(ImageFilter.UnsharpMask(2, 150, 2))
        faces.append(face)
    return faces


def rows(pipe: FacePipeline, photos: list, attributes: dict[str, float], whole_image: bool) -> np.ndarray:
    """(photos * 5) x S x S x 3 uint8: photo, untuned reconstruction and edit, tuned ones."""
    tiles = []
    for photo in photos:
        untuned = pipe.edit(photo, attributes, whole_image=whole_image, tune_steps=0)
        tuned = pipe.edit(photo, attributes, whole_image=whole_image)
        tiles += [untuned.images[0], *untuned.faces, *tuned.faces]
    return np.stack(tiles)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=None,
                        help="a folder of photos (default: altered generated faces)")
    parser.add_argument("--model", default="celeba64-original")
    parser.add_argument("--attr", action="append", default=[], metavar="NAME=STRENGTH",
                        help="the edit (default Smiling=2)")
    parser.add_argument("--seeds", default="3,11,20", help="generated faces' seeds without --photos")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/images/tuning.png"))
    args = parser.parse_args()
    attributes = {name: float(value) for name, _, value in (a.partition("=") for a in args.attr)} or {"Smiling": 2.0}
    pipe = FacePipeline.load(args.model)
    if args.photos is None:
        photos, whole = altered_faces(pipe, [int(s) for s in args.seeds.split(",")]), True
    else:
        photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        whole = False
    edit = ", ".join(f"{name} {value:+g}" for name, value in attributes.items())
    labels = ["photo", "untuned", f"untuned, {edit}", "tuned", f"tuned, {edit}"]
    imaging.save_images(rows(pipe, photos, attributes, whole), args.out, 5, scale=args.scale, column_labels=labels)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
