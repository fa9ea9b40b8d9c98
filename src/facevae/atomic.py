"""Publishing folders atomically: built in a temporary sibling, renamed into place when complete.

Bundles, caches and exports all go through here, so an interrupted write never leaves a
folder that looks finished. A staging folder is named `.TARGET.partial-HOST-PID-RANDOM`:
one left by a process that was killed (SIGKILL, power loss) is swept away the next time a
folder is staged next to it, once its owner is gone. Published files get the mode any new
file gets (0666 less the umask), whatever the writing library chose, so a folder shared
between users is readable by all of them or by none.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError

# A staging folder whose owner cannot be checked (another host, an old name) is stale after
# this long; one of a process on this host is stale as soon as that process is gone.
STALE_SECONDS = 24 * 3600
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:32] or "host"
_LEFTOVER = re.compile(r"\.(?P<target>.+)\.(?:partial-(?:(?P<host>\w+)-(?P<pid>\d+)-)?\w+|old-(?P<old_pid>\d+))")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _is_stale(folder: Path, now: float) -> bool:
    match = _LEFTOVER.fullmatch(folder.name)
    if match is None:
        return False
    pid = match["pid"] or match["old_pid"]
    same_host = match["old_pid"] is not None or match["host"] == _HOST
    if pid is not None and same_host and int(pid) != os.getpid() and not _process_alive(int(pid)):
        return True
    try:
        return now - folder.stat().st_mtime > STALE_SECONDS
    except FileNotFoundError:
        return False


def sweep_stale_staging(folder: Path, name: str | None = None) -> list[Path]:
    """Delete the leftovers of interrupted writes in `folder` (staging and moved-aside folders):
    those of the target `name` only, or of every target when name is None."""
    swept, now = [], time.time()
    if not folder.is_dir():
        return swept
    for leftover in folder.glob(f".{_glob_escape(name)}.*" if name else ".*"):
        match = _LEFTOVER.fullmatch(leftover.name)
        if match and match["target"] == (name or match["target"]) and leftover.is_dir() and _is_stale(leftover, now):
            shutil.rmtree(leftover, ignore_errors=True)
            swept.append(leftover)
    return swept


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def require_parent_folder(path: str | Path, what: str = "the output") -> Path:
    """`path`, if the folder it goes in exists; a UserError saying to create that folder if not
    (a mistyped folder name should not silently become a new folder)."""
    path = Path(path).expanduser()
    parent = path.absolute().parent
    if not parent.is_dir():
        problem = "is not a folder" if parent.exists() else "does not exist"
        raise UserError(f"cannot write {what} {path}: the folder {parent} {problem}. "
                        f"Create it first (mkdir -p {parent}) or choose another path")
    return path


def make_staging_dir(target: Path) -> Path:
    """An empty temporary folder next to `target` (same file system, so the rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_staging(target.parent, target.name)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-{_HOST}-{os.getpid()}-", dir=target.parent))


def _umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting, then restored at once
    os.umask(mask)
    return mask


def _normalise_modes(folder: Path) -> None:
    """Every file and folder inside gets the mode a plain new one would (safetensors writes 0600)."""
    mask = _umask()
    for root, folders, files in os.walk(folder):
        for name in folders:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)
    os.chmod(folder, 0o777 & ~mask)  # mkdtemp makes folders private; a published one is like any other


def replace_dir(new: Path, target: Path) -> None:
    """Move folder `new` to `target`, replacing any previous folder there, never leaving
    `target` half-written (the old one is moved aside first, then deleted)."""
    _normalise_modes(new)
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
