"""`facevae directions --store` stores the directions without writing a picture nobody asked for (issue 19, item 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facevae.cli.main import main
from facevae.model.bundle import load_bundle


def test_store_writes_no_picture_unless_out_is_given(tiny_bundle: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    stored = tmp_path / "stored"
    assert main(["directions", "--model", str(tiny_bundle), "--count", "2", "--store",
                 "--bundle-out", str(stored)]) == 0
    assert not (tmp_path / "directions.png").exists()
    assert {"discovered_0", "discovered_1"} <= set(load_bundle(stored).attributes)
    assert main(["directions", "--model", str(tiny_bundle), "--count", "2", "--store", "--bundle-out", str(stored),
                 "--out", "grid.png"]) == 0
    assert (tmp_path / "grid.png").is_file()
    assert main(["directions", "--model", str(tiny_bundle), "--count", "2"]) == 0  # without --store: the picture
    assert (tmp_path / "directions.png").is_file()
