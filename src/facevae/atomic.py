"""Publishing folders atomically: built in a temporary sibling, renamed into place when complete.

Bundles, caches and exports all go through here, so an interrupted write never leaves a
folder that looks finished.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def make_staging_dir(target: Path) -> Path:
    """An empty temporary folder next to `target` (same file system, so the rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))


def replace_dir(new: Path, target: Path) -> None:
    """Move folder `new` to `target`, replacing any previous folder there, never leaving
    `target` half-written (the old one is moved aside first, then deleted)."""
    os.chmod(new, 0o755)  # mkdtemp makes folders private; a published one is like any other
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_dir(target: str | Path) -> Iterator[Path]:
    """Yield a staging folder; on normal exit it replaces `target`, on any error it is deleted."""
    target = Path(target)
    tmp = make_staging_dir(target)
    try:
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
