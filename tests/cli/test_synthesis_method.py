"""`--method linear|guided` on the synthesis commands that edit attributes (not morph, whose
--method is its interpolation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facevae.cli.main import main


def run(*args: str) -> int:
    return main([str(a) for a in args])


def test_guided_generate_differs_from_linear_and_repeats(tiny_bundle: Path, tmp_path: Path) -> None:
    common = ("generate", "--model", tiny_bundle, "-n", 2, "--seed", 3, "--attr", "Smiling=2")
    assert run(*common, "--out", tmp_path / "linear.png", "--latents", tmp_path / "linear.npy") == 0
    for name in ("guided", "again"):
        assert run(*common, "--method", "guided", "--keep", "*", "--out", tmp_path / f"{name}.png",
                   "--latents", tmp_path / f"{name}.npy") == 0
    assert (tmp_path / "guided.png").read_bytes() == (tmp_path / "again.png").read_bytes()
    assert not np.allclose(np.load(tmp_path / "guided.npy"), np.load(tmp_path / "linear.npy"))


def test_method_errors_are_usage_errors(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("generate", "--model", tiny_bundle, "--method", "curved", "--out", tmp_path / "x.png")
    assert exit_info.value.code == 2 and "--method" in capsys.readouterr().err
    assert run("generate", "--model", tiny_bundle, "--attr", "Smiling=1", "--keep", "*",
               "--out", tmp_path / "x.png") == 2
    assert "needs method='guided'" in capsys.readouterr().err
    assert run("morph", "--model", tiny_bundle, "--method", "slerp", "-n", 1, "--steps", 2,
               "--out", tmp_path / "m.png") == 0  # morph's --method is still its interpolation
