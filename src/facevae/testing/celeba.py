"""Generate CelebA-format folders for tests and benchmarks: real JPEGs, real label files.

    make_celeba(root, layout="official", count=300, corrupt=1, missing_row=1)

writes `count` 178x218 JPEGs (quality 90) of varied, face-like content, named like CelebA's
(000001.jpg, ...), with `list_attr_celeba.txt` (a count line, the 40 names, one row per image
of the file name and -1/1 values) and `list_eval_partition.txt` (0 train, 1 valid, 2 test),
or the Kaggle CSV variants, in one of the layouts people actually have on disk:

- "official":    root/img_align_celeba/*.jpg, root/list_attr_celeba.txt, root/list_eval_partition.txt
- "kaggle":      root/img_align_celeba/img_align_celeba/*.jpg, root/list_attr_celeba.csv,
                 root/list_eval_partition.csv (header row, an `image_id` column)
- "torchvision": root/celeba/ holding the official layout
- "folder":      root/<group>/*.jpg|png|webp in sub-folders, optionally root/attributes.csv

The last `corrupt` images are damaged (alternately truncated and overwritten with garbage);
the last `missing_row` images that are not corrupt have no attribute row. The returned
`CelebaFixture` says which files are which so tests can check what prepare reports.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# CelebA's 40 attributes, in the order of list_attr_celeba.txt.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
    "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
    "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
WIDTH, HEIGHT = 178, 218
LAYOUTS = ("official", "kaggle", "torchvision", "folder")


@dataclass
class CelebaFixture:
    root: Path  # what the user passes to `facevae prepare`
    names: list[str]  # every image file written, relative to root, in CelebA order
    attributes: np.ndarray  # len(names) x 40 int8 in {0, 1}: the labels written (or that would be)
    partition: np.ndarray  # len(names) uint8 in {0, 1, 2}
    corrupt: list[str] = field(default_factory=list)  # damaged files (relative to root)
    missing_row: list[str] = field(default_factory=list)  # files without an attribute row
    extra_rows: list[str] = field(default_factory=list)  # attribute rows without a file

    @property
    def good(self) -> list[str]:
        """The files a correct prepare keeps, in order."""
        dropped = set(self.corrupt) | set(self.missing_row)
        return [name for name in self.names if name not in dropped]


def face_image(rng: np.random.Generator, width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
    """A varied, face-like RGB picture: gradient background, hair, face, eyes, mouth, texture.

    JPEG sizes at quality 90 come out near real CelebA's (about 6-12 kB)."""
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    background = (top * (1 - ramp) + bottom * ramp) * np.ones((1, width, 1), np.float32)
    image = Image.fromarray(background.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    cx, cy = width / 2 + rng.normal(0, 6), height / 2 + rng.normal(0, 6)
    face_w, face_h = rng.uniform(50, 70), rng.uniform(70, 90)
    hair = tuple(int(v) for v in rng.integers(0, 200, 3))
    skin = tuple(int(v) for v in (rng.uniform(120, 255), rng.uniform(90, 210), rng.uniform(70, 180)))
    draw.ellipse((cx - face_w - 12, cy - face_h - 18, cx + face_w + 12, cy + face_h * 0.6), fill=hair)
    draw.ellipse((cx - face_w, cy - face_h, cx + face_w, cy + face_h), fill=skin)
    for side in (-1, 1):
        ex, ey = cx + side * face_w * 0.4, cy - face_h * 0.2
        draw.ellipse((ex - 9, ey - 5, ex + 9, ey + 5), fill=(240, 240, 240))
        draw.ellipse((ex - 4, ey - 4, ex + 4, ey + 4), fill=tuple(int(v) for v in rng.integers(0, 120, 3)))
    mouth = rng.uniform(4, 14)
    draw.chord((cx - 20, cy + 25 - mouth, cx + 20, cy + 25 + mouth), 0, 180, fill=(150, 40, 50))
    image = image.filter(ImageFilter.BoxBlur(int(rng.integers(1, 3))))
    y, x = rng.integers(0, 512 - height), rng.integers(0, 512 - width)
    pixels = np.asarray(image, dtype=np.int16) + _noise()[y:y + height, x:x + width]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@functools.cache
def _noise() -> np.ndarray:
    """A fixed 512 x 512 x 1 bank of sensor-like noise; faces take random windows of it."""
    return np.random.default_rng(1234).normal(0, 4, (512, 512, 1)).round().astype(np.int16)


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def make_celeba(root: str | Path, layout: str = "official", count: int = 300, *, corrupt: int = 0,
                missing_row: int = 0, extra_rows: int = 0, partition: bool = True,
                attributes: bool = True, seed: int = 0) -> CelebaFixture:
    """Write a CelebA-format data folder under `root` (created); see the module docstring.

    partition=False leaves out the partition file (prepare then splits by seed);
    attributes=False leaves out the attribute file (and, for "folder", the CSV);
    extra_rows adds attribute and partition rows for files that do not exist.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    base = root / "celeba" if layout == "torchvision" else root
    image_dir = {"official": base / "img_align_celeba", "torchvision": base / "img_align_celeba",
                 "kaggle": base / "img_align_celeba" / "img_align_celeba", "folder": base}[layout]
    stems = [f"{index:06d}" for index in range(1, count + 1)]
    if layout == "folder":  # nested groups, three formats
        suffixes = [(".jpg", ".jpg", ".png", ".jpg", ".webp")[index % 5] for index in range(count)]
        files = [Path(f"group{index % 3}") / f"{stem}{suffix}"
                 for index, (stem, suffix) in enumerate(zip(stems, suffixes))]
    else:
        files = [Path(f"{stem}.jpg") for stem in stems]
    label_names = [str(file.as_posix()) if layout == "folder" else file.name for file in files]

    labels = (rng.random((count, len(CELEBA_ATTRIBUTES))) < 0.3).astype(np.int8)
    split = rng.choice(np.array([0, 1, 2], np.uint8), size=count, p=[0.8, 0.1, 0.1])
    for file in files:
        path = image_dir / file
        path.parent.mkdir(parents=True, exist_ok=True)
        picture = face_image(rng)
        if path.suffix == ".jpg":
            path.write_bytes(jpeg_bytes(picture))
        else:
            picture.save(path, lossless=True) if path.suffix == ".webp" else picture.save(path)

    rel = [str((image_dir / file).relative_to(root).as_posix()) for file in files]
    fixture = CelebaFixture(root, rel, labels, split)
    for position in range(count - 1, count - 1 - corrupt, -1):
        path = image_dir / files[position]
        data = path.read_bytes()
        if (count - 1 - position) % 2 == 0:
            path.write_bytes(data[: len(data) // 2])  # truncated mid-scan
        else:
            path.write_bytes(b"\x89 not an image at all " * 20)
        fixture.corrupt.append(rel[position])
    unlabelled = [p for p in range(count - 1 - corrupt, -1, -1)][:missing_row]
    fixture.missing_row = [rel[p] for p in unlabelled]
    rows = [p for p in range(count) if p not in set(unlabelled)]
    extra = [f"{index:06d}.jpg" for index in range(count + 1, count + 1 + extra_rows)]
    fixture.extra_rows = extra

    if attributes:
        _write_labels(root, base, layout, [label_names[p] for p in rows], labels[rows], label_names, split, extra,
                      partition)
    return fixture


def _write_labels(root: Path, base: Path, layout: str, labelled: list[str], labels: np.ndarray,
                  every_name: list[str], split: np.ndarray, extra: list[str], partition: bool) -> None:
    """The attribute file (rows for `labelled`, 0/1 `labels`) and the partition file (every
    image) in the layout's format; `extra` names get rows although they have no image."""
    if layout == "folder":
        lines = ["filename," + ",".join(CELEBA_ATTRIBUTES[:5])]
        lines += [f"{name}," + ",".join(str(int(v)) for v in row[:5]) for name, row in zip(labelled, labels)]
        lines += [f"{name}," + ",".join("0" for _ in range(5)) for name in extra]
        (root / "attributes.csv").write_text("\n".join(lines) + "\n")
        return
    signed = labels * 2 - 1
    if layout == "kaggle":
        attr = ["image_id," + ",".join(CELEBA_ATTRIBUTES)]
        attr += [f"{name}," + ",".join(str(int(v)) for v in row) for name, row in zip(labelled, signed)]
        attr += [f"{name}," + ",".join("-1" for _ in CELEBA_ATTRIBUTES) for name in extra]
        (base / "list_attr_celeba.csv").write_text("\n".join(attr) + "\n")
        if partition:
            part = ["image_id,partition"] + [f"{name},{value}" for name, value in zip(every_name, split)]
            part += [f"{name},0" for name in extra]
            (base / "list_eval_partition.csv").write_text("\n".join(part) + "\n")
        return
    # The official text format: right-aligned columns separated by runs of spaces.
    attr = [str(len(labelled) + len(extra)), " ".join(CELEBA_ATTRIBUTES) + " "]
    attr += [f"{name} " + " ".join(f"{int(v):2d}" for v in row) for name, row in zip(labelled, signed)]
    attr += [f"{name} " + " ".join("-1" for _ in CELEBA_ATTRIBUTES) for name in extra]
    (base / "list_attr_celeba.txt").write_text("\n".join(attr) + "\n")
    if partition:
        part = [f"{name} {value}" for name, value in zip(every_name, split)] + [f"{name} 0" for name in extra]
        (base / "list_eval_partition.txt").write_text("\n".join(part) + "\n")
