"""`facevae prepare` end to end through facevae.cli.main.main."""

from __future__ import annotations

import numpy as np

from facevae.cli.main import main
from facevae.data.cache import ImageCache
from facevae.testing.celeba import make_celeba


def test_prepare_command_writes_reuses_and_reports(tmp_path, capsys):
    fixture = make_celeba(tmp_path / "celeba", "kaggle", count=30, corrupt=1, missing_row=1)
    out = tmp_path / "cache"
    argv = ["prepare", str(tmp_path / "celeba"), "--size", "32", "--crop", "center", "--crop-size", "148",
            "--out", str(out), "--workers", "2"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "Preparing" in captured.err and "a Kaggle CelebA folder" in captured.err
    assert f"{out}: 28 images, 32x32 (center 148), 40 attributes" in captured.out
    assert "unreadable or truncated images skipped: 1" in captured.out
    assert "images without an attribute row skipped: 1" in captured.out
    cache = ImageCache.open(out)
    assert cache.filenames == fixture.good and cache.images.shape == (28, 32, 32, 3)
    assert cache.meta["preprocessing"] == {"image_size": 32, "crop": "center", "crop_size": 148}
    rows = [fixture.names.index(name) for name in fixture.good]
    np.testing.assert_array_equal(cache.split, fixture.partition[rows])

    assert main(argv) == 0
    assert "Reusing the prepared cache" in capsys.readouterr().err


def test_prepare_command_seeded_split_options(tmp_path, capsys):
    make_celeba(tmp_path, "folder", count=20, attributes=False)
    assert main(["prepare", str(tmp_path), "--size", "32", "--val-fraction", "0.25", "--test-fraction", "0.25",
                 "--split-seed", "3", "--workers", "1", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "split: train 10 / valid 5 / test 5 (seeded split, seed 3)" in captured.out
    assert ImageCache.open(tmp_path / ".facevae-cache" / "32-squash").meta["source"]["layout"] == "folder"


def test_prepare_command_errors_are_messages_not_tracebacks(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert main(["prepare", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is not a dataset" in err and "Traceback" not in err
    make_celeba(tmp_path / "c", "official", count=3)
    assert main(["prepare", str(tmp_path / "c"), "--val-fraction", "0.6", "--test-fraction", "0.5"]) == 2
    assert "leave some training images" in capsys.readouterr().err
