"""Where the shared, read-only development material is: FACEVAE_SHARED, else ../shared.

On development machines the folder sits next to the clone (../shared). Another clone points
FACEVAE_SHARED at its copy; without one, the tests that need it skip with `skip_reason`,
which names the variable.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV = "FACEVAE_SHARED"
REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_folder() -> Path:
    """FACEVAE_SHARED when set, else the folder `shared` next to the repository."""
    chosen = os.environ.get(SHARED_ENV, "").strip()
    return Path(chosen).expanduser() if chosen else REPO_ROOT.parent / "shared"


SHARED = shared_folder()


def skip_reason(what: str) -> str:
    """Why a test skips: `what` (e.g. "the real photos") is not in the shared folder, and how to point to it."""
    return f"{what} not found in {SHARED}: set {SHARED_ENV} to the shared folder (default ../shared next to the clone)"
