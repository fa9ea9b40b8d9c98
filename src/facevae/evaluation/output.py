"""The folders `classifier train`, `classifier evaluate` and `evaluate` write: checked before the
work starts, so a read-only, full or foreign --out is said at once, not after minutes of work.

    check_replaceable(out, is_ours, "a classifier folder", "facevae classifier train")
    check_writable(out, needed_bytes)
    with writing(out): ...        # an OSError while publishing becomes a message
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError
from ..files import format_bytes

MARGIN_BYTES = 16 << 20  # room beyond the files' own size: PNGs, CSVs, file-system overhead


def check_replaceable(out: Path, is_ours: Callable[[Path], bool], what: str, command: str) -> None:
    """`out` is replaced as a whole, so it must be new, empty or an earlier folder of the same kind."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for {what}")
    if any(out.iterdir()) and not is_ours(out):
        raise UserError(f"--out {out} holds other files and would be replaced; give a new folder or an earlier "
                        f"`{command}` folder")


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(out: Path, needed_bytes: int = 0) -> None:
    """A folder can be made next to `out` (or inside the folder it will go in) and the disk has
    needed_bytes + MARGIN_BYTES free; a UserError naming the folder and the fix otherwise."""
    parent = _existing_ancestor(out.absolute().parent)
    fix = "choose another --out"
    try:
        probe = tempfile.mkdtemp(prefix=f".{out.name}.probe-", dir=parent)
        os.rmdir(probe)
    except OSError as error:
        raise UserError(f"cannot write in {parent} ({error.strerror or error}); {fix}") from None
    free = shutil.disk_usage(parent).free
    if free < needed_bytes + MARGIN_BYTES:
        raise UserError(f"{parent} has {format_bytes(free)} free but the output needs about "
                        f"{format_bytes(needed_bytes + MARGIN_BYTES)}; free some space or {fix}")


@contextmanager
def writing(out: Path) -> Iterator[None]:
    """Turn a failed write of `out` (disk full, permissions changed meanwhile) into a UserError."""
    try:
        yield
    except OSError as error:
        full = error.errno == errno.ENOSPC
        raise UserError(f"could not write {out}: {'the disk is full' if full else error.strerror or error}; "
                        f"nothing was published there. Free some space or choose another --out") from None
