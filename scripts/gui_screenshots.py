"""Refresh the GUI screenshots in docs/images (gui-*.png) from the real-browser test.

    python scripts/gui_screenshots.py

Runs tests/app/test_gui_browser.py with FACEVAE_GUI_SCREENSHOTS=docs/images, so the pictures
in the documentation are exactly what the end-to-end test saw (70 faces instead of the
test's 10). Needs /usr/bin/chromium and ../shared/pretrained/original-celeba64.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    images = REPO / "docs" / "images"
    env = {**os.environ, "FACEVAE_GUI_SCREENSHOTS": str(images)}
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "tests/app/test_gui_browser.py"]
    started = time.time()
    code = subprocess.call(command, cwd=REPO, env=env)
    fresh = sorted(p.name for p in images.glob("gui-*.png") if p.stat().st_mtime >= started)
    if code != 0 or not fresh:
        print("no screenshots were taken (see the test output above: failed or skipped)", file=sys.stderr)
        return code or 1
    print(f"screenshots written to {images}: {', '.join(fresh)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
