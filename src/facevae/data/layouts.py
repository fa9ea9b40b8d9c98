"""Recognise the data folder a user points at, or say exactly what it lacks.

Accepted layouts (DATA_DIR is what the user passes):
- official:    DATA_DIR/img_align_celeba/*.jpg, list_attr_celeba.txt, list_eval_partition.txt
               (also the Google Drive tree: Img/img_align_celeba/, Anno/, Eval/)
- kaggle:      DATA_DIR/img_align_celeba/img_align_celeba/*.jpg, list_attr_celeba.csv,
               list_eval_partition.csv (an `image_id` column)
- torchvision: DATA_DIR/celeba/ holding the official files
- folder:      any folder of .jpg/.jpeg/.png/.webp images (sub-folders too; hidden ones are
               skipped), with an optional attribute CSV: DATA_DIR/attributes.csv, or the only
               .csv file in DATA_DIR
A CelebA folder whose label files are missing is still used (no attributes, or a seeded
split); `Layout.notes` says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .cache import is_cache

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# Where each CelebA file may be, relative to the CelebA root, most specific first.
_IMAGE_DIRS = ("img_align_celeba/img_align_celeba", "img_align_celeba", "Img/img_align_celeba")
_ATTRIBUTE_FILES = ("list_attr_celeba.txt", "list_attr_celeba.csv", "Anno/list_attr_celeba.txt")
_PARTITION_FILES = ("list_eval_partition.txt", "list_eval_partition.csv", "Eval/list_eval_partition.txt")
_ARCHIVES = ("img_align_celeba.zip", "Img/img_align_celeba.zip", "celeba.zip", "archive.zip")


class DataLayoutError(UserError):
    """A data folder that is none of the accepted layouts."""


@dataclass
class Layout:
    kind: str  # "official", "kaggle", "torchvision" or "folder"
    data_dir: Path  # what the user passed; cached file names are relative to it
    image_dir: Path  # the folder holding the images
    attributes_file: Path | None
    partition_file: Path | None
    notes: list[str] = field(default_factory=list)  # what is missing and what we do instead

    @property
    def is_celeba(self) -> bool:
        return self.kind != "folder"

    def describe(self) -> str:
        names = {"official": "an official CelebA folder", "kaggle": "a Kaggle CelebA folder",
                 "torchvision": "a torchvision CelebA folder", "folder": "an image folder"}
        return names[self.kind]

    def list_images(self) -> tuple[list[str], list[int]]:
        """Every image, sorted: paths relative to data_dir (with '/') and file sizes in bytes.

        CelebA layouts list only the image folder itself (as the label files do); the folder
        layout walks sub-folders too, skipping hidden ones (such as .facevae-cache)."""
        found: list[tuple[str, int]] = []
        folders = [self.image_dir.relative_to(self.data_dir).as_posix()]  # "." for the data folder
        while folders:
            folder = folders.pop()
            prefix = "" if folder == "." else folder + "/"
            with os.scandir(self.data_dir / folder) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir() and not self.is_celeba:
                        folders.append(prefix + entry.name)
                    elif entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file():
                        found.append((prefix + entry.name, entry.stat().st_size))
        found.sort()
        return [name for name, _ in found], [size for _, size in found]


def detect_layout(data_dir: str | Path) -> Layout:
    """The layout of data_dir, or a DataLayoutError naming what was looked for and found."""
    data_dir = Path(data_dir).expanduser().absolute()
    if not data_dir.exists():
        raise DataLayoutError(f"{data_dir} does not exist")
    if not data_dir.is_dir():
        raise DataLayoutError(f"{data_dir} is a file; pass the folder that holds the images")
    if is_cache(data_dir):
        raise DataLayoutError(f"{data_dir} is already a prepared cache: pass it to `facevae train --data` as it is")
    for root, kind in ((data_dir, None), (data_dir / "celeba", "torchvision")):
        image_dir = next((root / d for d in _IMAGE_DIRS if _holds_images(root / d)), None)
        if image_dir is None:
            continue
        attributes = _first_file(root, _ATTRIBUTE_FILES)
        partition = _first_file(root, _PARTITION_FILES)
        nested_or_csv = image_dir.parent.name == "img_align_celeba" or any(
            f is not None and f.suffix == ".csv" for f in (attributes, partition))
        kind = kind or ("kaggle" if nested_or_csv else "official")
        notes = []
        if attributes is None:
            notes.append(f"no list_attr_celeba.txt or .csv in {root}: the cache will have no attributes "
                         f"(attribute vectors for editing need them)")
        if partition is None:
            notes.append(f"no list_eval_partition.txt or .csv in {root}: using a seeded random split")
        return Layout(kind, data_dir, image_dir, attributes, partition, notes)
    _raise_if_celeba_without_images(data_dir)
    if _holds_images(data_dir, recursive=True):
        table = _folder_csv(data_dir)
        notes = [] if table else [f"no attribute CSV in {data_dir}: the cache will have no attributes"]
        return Layout("folder", data_dir, data_dir, table, None, notes)
    raise DataLayoutError(_nothing_found_message(data_dir))


def _holds_images(folder: Path, recursive: bool = False) -> bool:
    if not folder.is_dir():
        return False
    pending = [folder]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file():
                    return True
                if recursive and entry.is_dir():
                    pending.append(Path(entry.path))
    return False


def _first_file(root: Path, candidates: tuple[str, ...]) -> Path | None:
    return next((root / name for name in candidates if (root / name).is_file()), None)


def _raise_if_celeba_without_images(data_dir: Path) -> None:
    """CelebA label files or archives without the images: say where the images must go."""
    for root in (data_dir, data_dir / "celeba"):
        present = [name for name in _ATTRIBUTE_FILES + _PARTITION_FILES + _ARCHIVES if (root / name).is_file()]
        empty_dirs = [name for name in _IMAGE_DIRS if (root / name).is_dir()]
        if not present and not empty_dirs:
            continue
        archives = [name for name in present if name.endswith(".zip")]
        message = (f"{root} looks like CelebA ({', '.join(present + [d + '/' for d in empty_dirs])}) but has no "
                   f"images: the .jpg files must be in {root / 'img_align_celeba'} (official), "
                   f"{root / 'img_align_celeba' / 'img_align_celeba'} (Kaggle) or "
                   f"{data_dir / 'celeba' / 'img_align_celeba'} (torchvision)")
        if archives:
            message += f". Unzip the images first: unzip {root / archives[0]} -d {root}"
        raise DataLayoutError(message)


def _folder_csv(data_dir: Path) -> Path | None:
    if (data_dir / "attributes.csv").is_file():
        return data_dir / "attributes.csv"
    csvs = sorted(p for p in data_dir.glob("*.csv") if p.is_file() and not p.name.startswith("."))
    if len(csvs) > 1:
        raise DataLayoutError(f"{data_dir} holds several CSV files ({', '.join(p.name for p in csvs)}); "
                              f"name the attribute table attributes.csv so it is unambiguous")
    return csvs[0] if csvs else None


def _nothing_found_message(data_dir: Path) -> str:
    visible = sorted(p.name + ("/" if p.is_dir() else "") for p in data_dir.iterdir() if not p.name.startswith("."))
    shown = ", ".join(visible[:8]) + (f" and {len(visible) - 8} more" if len(visible) > 8 else "")
    return (f"{data_dir} is not a dataset: it has no CelebA files (img_align_celeba/ with .jpg images, "
            f"list_attr_celeba.txt or .csv, list_eval_partition.txt or .csv; or a celeba/ folder holding "
            f"them) and no .jpg, .jpeg, .png or .webp images in it or its sub-folders. "
            f"It contains: {shown or 'nothing'}")
