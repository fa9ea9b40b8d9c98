"""Read CelebA label files and attribute CSVs into arrays, with exact messages for bad lines.

Formats:
- list_attr_celeba.txt (official): line 1 the number of images, line 2 the attribute names,
  then one row per image: the file name and one -1/1 value per attribute, space separated.
- list_attr_celeba.csv (Kaggle), or any folder's attribute CSV: a header row whose first
  column names the file (`image_id`, `filename`, ...) and then one column per attribute;
  values -1/1 or 0/1.
- list_eval_partition.txt: rows of file name and 0 (train), 1 (valid) or 2 (test);
  list_eval_partition.csv: the same with a header (`image_id,partition`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

# CelebA's 40 binary attributes, in the order of list_attr_celeba.txt.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
    "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
)


class LabelError(UserError):
    """A label file that cannot be read as what its name says."""


@dataclass
class AttributeTable:
    """The rows of an attribute file."""

    names: list[str]  # the file name of each row, as written
    attribute_names: list[str]
    values: np.ndarray  # rows x attributes int8: 1 = has it, 0 = has not (-1 in the file)
    declared_count: int | None = None  # the official file's first line


def read_attributes(path: str | Path) -> AttributeTable:
    """An official .txt attribute file or an attribute CSV (Kaggle's or a folder's)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        header, fields = _read_csv(path)
        _require_header(path, header[1:], "the attribute names (e.g. filename,Smiling,Eyeglasses)",
                        lambda field: field in ("-1", "0", "1"))
        rows = [(number, row[0].strip(), " ".join(row[1:])) for number, row in fields]
        return _attribute_table(path, header[1:], rows, None)
    lines = _read_lines(path)
    if len(lines) < 2:
        raise LabelError(f"{path} is too short: the official format has the image count on line 1 "
                         f"and the attribute names on line 2")
    try:
        declared = int(lines[0][1])
    except ValueError:
        raise LabelError(f"{path} line 1 should be the number of images, found {lines[0][1][:60]!r}") from None
    names = lines[1][1].split()
    rows = [(number, *_name_and_rest(line)) for number, line in lines[2:]]
    return _attribute_table(path, names, rows, declared)


def _name_and_rest(line: str) -> tuple[str, str]:
    parts = line.split(None, 1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def read_partition(path: str | Path) -> tuple[list[str], np.ndarray]:
    """File names and their partition codes (uint8: 0 train, 1 valid, 2 test)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        header, fields = _read_csv(path)
        _require_header(path, header[-1:], "the column names (image_id,partition)",
                        lambda field: field in ("0", "1", "2"))
        rows = [(number, ",".join(row)) for number, row in fields]
        names = [row[0].strip() if len(row) == 2 else "" for _, row in fields]
        code_text = [row[-1].strip() for _, row in fields]
    else:  # "000001.jpg 0": the code is the last character (no per-line split: 200k lines)
        rows = [(number, line.strip()) for number, line in _read_lines(path)]
        names = [line[:-1].rstrip() for _, line in rows]
        code_text = [line[-1] for _, line in rows]
    joined = "".join(code_text)
    codes = np.frombuffer(joined.encode("ascii", "replace"), np.uint8) - ord("0")  # wraps for bad text
    if len(joined) != len(rows) or (codes > 2).any() or not all(names) or any(" " in n or "\t" in n for n in names):
        bad = next(index for index, (name, code) in enumerate(zip(names, code_text))
                   if code not in ("0", "1", "2") or not name or " " in name or "\t" in name)
        number, text = rows[bad]
        raise LabelError(f"{path} line {number}: expected a file name and 0 (train), 1 (valid) or "
                         f"2 (test), found {text[:80]!r}")
    return names, codes


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every non-blank line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise LabelError(f"{path} is not a text file") from None
    return [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the (line number, fields) of every non-blank row."""
    reader = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            rows = [(reader.line_num, fields) for fields in reader if any(f.strip() for f in fields)]
    except UnicodeDecodeError:
        raise LabelError(f"{path} is not a text file") from None
    except csv.Error as error:  # e.g. a field longer than csv.field_size_limit() (128 KB)
        where = f" line {reader.line_num}" if reader is not None else ""
        raise LabelError(f"{path}{where} is not a readable CSV row ({error}); a label file holds short file names "
                         f"and numbers, so check that this is the right file") from None
    if not rows:
        raise LabelError(f"{path} is empty: expected a header row (file name column, then attribute columns)")
    header = [field.strip() for field in rows[0][1]]
    return header, rows[1:]


def _require_header(path: Path, names: list[str], expected: str, is_value) -> None:
    """Refuse a CSV whose first row is data: a header of label values means the header is missing
    (reading on would take a data row as the names and lose that row)."""
    if names and all(is_value(name) for name in names):
        raise LabelError(f"{path} has no header row: its first line holds values ({', '.join(names[:4])}"
                         f"{', ...' if len(names) > 4 else ''}), not names. Add a first line with {expected}")


def _attribute_table(path: Path, attribute_names: list[str], rows: list[tuple[int, str, str]],
                     declared: int | None) -> AttributeTable:
    """rows: (line number, file name, the values as space-separated text)."""
    if not attribute_names:
        raise LabelError(f"{path} names no attributes (expected the file name column, then one column per attribute)")
    width = len(attribute_names)
    # Fast path for CelebA's 202,599 rows: every valid token (-1, 0, 1) holds exactly one
    # digit, so counting digits checks each row's width without splitting it into tokens;
    # one vectorised parse reads all values. Anything odd goes to the exact, slow check.
    values = None
    if all(rest.count("1") + rest.count("0") == width for _, _, rest in rows):
        try:
            values = np.fromstring(" ".join(rest for _, _, rest in rows), dtype=np.int16, sep=" ")
            values = values.reshape(len(rows), width) if values.size == len(rows) * width else None
        except ValueError:
            values = None
    if values is None or not np.isin(values, (-1, 0, 1)).all():
        _raise_first_bad_row(path, attribute_names, rows)
    return AttributeTable([name for _, name, _ in rows], list(attribute_names), (values > 0).astype(np.int8), declared)


def _raise_first_bad_row(path: Path, attribute_names: list[str], rows: list[tuple[int, str, str]]) -> None:
    for number, _, rest in rows:
        tokens = rest.split()
        if len(tokens) != len(attribute_names):
            raise LabelError(f"{path} line {number}: expected a file name and {len(attribute_names)} values, "
                             f"found {len(tokens)} value{'' if len(tokens) == 1 else 's'} after the file name")
        for name, token in zip(attribute_names, tokens):
            if token not in ("-1", "0", "1"):
                raise LabelError(f"{path} line {number}: attribute {name} is {token!r}; attributes must be "
                                 f"binary: -1 or 0 (no) and 1 (yes)")
    raise LabelError(f"{path}: the attribute values could not be read")  # a token numpy rejects but we accept
