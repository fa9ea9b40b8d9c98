"""Reading files a user hands to facevae, so that no content makes it hang or crash; sizes for messages.

read_json: JSON of any nesting depth gives a message, not a RecursionError.
require_regular_file: a FIFO or device named like a weights file is refused before it is
opened (opening a FIFO blocks until someone writes to it).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from .errors import UserError


def read_json(path: str | Path, error: type[UserError] = UserError, fix: str = "restore or recreate the file") -> Any:
    """The parsed JSON of a regular file; any problem raises `error` with `fix` appended."""
    path = Path(path)
    require_regular_file(path, error)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise error(f"{path} nests lists or objects too deeply to be read; {fix}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as problem:
        raise error(f"{path} is not valid JSON ({problem}); {fix}") from None
    except OSError as problem:
        raise error(f"cannot read {path} ({problem.strerror or problem}); {fix}") from None


def parse_json(text: str | bytes) -> Any:
    """json.loads, with nesting too deep for Python reported as a ValueError like any bad JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("lists or objects nested too deeply") from None


def require_regular_file(path: str | Path, error: type[UserError] = UserError) -> Path:
    """`path` if it is a regular file (links followed); a message saying what it is otherwise."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise error(f"{path} is missing") from None
    except OSError as problem:
        raise error(f"cannot read {path} ({problem.strerror or problem})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else \
            "a device or socket"
        raise error(f"{path} is {kind}, not a regular file; put the real file there")
    return path


def format_bytes(count: float) -> str:
    """1536 -> "1.5 KB", 3.2e9 -> "3.2 GB": the unit that keeps the number readable."""
    units = ("bytes", "KB", "MB", "GB", "TB")
    index = 0
    while abs(count) >= 1000 and index < len(units) - 1:
        count, index = count / 1000, index + 1
    return f"{count:.0f} bytes" if index == 0 else f"{count:.1f} {units[index]}"
