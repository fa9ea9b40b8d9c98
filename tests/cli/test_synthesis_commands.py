"""The synthesis commands end to end through `facevae.cli.main.main`: files written, same seed ->
same bytes, and clear errors (exit status 2, `error: ...`, no traceback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facevae.cli.main import main
from facevae.inference.pipeline import FacePipeline
from facevae.model.bundle import load_bundle
from support.images import photo_of


def run(*args: str) -> int:
    return main([str(a) for a in args])


def test_generate_grid_folder_and_latents(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    grid = tmp_path / "faces.png"
    assert run("generate", "--model", tiny_bundle, "-n", 6, "--seed", 4, "--attr", "Smiling=1.5",
               "--attr", "Eyeglasses=-1", "--columns", 3, "--out", grid, "--latents", tmp_path / "codes.npy") == 0
    assert "wrote" in capsys.readouterr().out
    assert Image.open(grid).size == (3 * 34 + 2, 2 * 34 + 2)
    codes = np.load(tmp_path / "codes.npy")
    assert codes.shape == (6, 16) and codes.dtype == np.float32
    again = tmp_path / "again.png"
    run("generate", "--model", tiny_bundle, "-n", 6, "--seed", 4, "--attr", "Smiling=1.5", "--attr", "Eyeglasses=-1",
        "--columns", 3, "--out", again)
    assert grid.read_bytes() == again.read_bytes()
    decoded = tmp_path / "decoded.png"
    assert run("decode", tmp_path / "codes.npy", "--model", tiny_bundle, "--columns", 3, "--out", decoded) == 0
    assert decoded.read_bytes() == grid.read_bytes()  # the saved codes include the edits
    assert run("generate", "--model", tiny_bundle, "-n", 3, "--out", tmp_path / "folder", "--scale", 2) == 0
    files = sorted((tmp_path / "folder").iterdir())
    assert [f.name for f in files] == ["face_000.png", "face_001.png", "face_002.png"]
    assert Image.open(files[0]).size == (64, 64)


def test_unknown_attribute_gets_a_suggestion(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    assert run("generate", "--model", tiny_bundle, "--attr", "Smilng=1", "--out", tmp_path / "x.png") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown attribute 'Smilng'. Did you mean 'Smiling'?") and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_malformed_options_are_usage_errors(tiny_bundle: Path, capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit) as exit_info:
        run("generate", "--model", tiny_bundle, "--attr", "Smiling")
    assert exit_info.value.code == 2 and "NAME=STRENGTH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run("arithmetic", "Smiling", "--strengths", "a,b")


def test_decode_refuses_files_that_are_not_latents(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    picture = tmp_path / "picture.png"
    Image.new("RGB", (4, 4)).save(picture)
    assert run("decode", picture, "--model", tiny_bundle) == 2
    assert "not a NumPy .npy file" in capsys.readouterr().err
    np.save(tmp_path / "wrong.npy", np.zeros((2, 7), np.float32))
    assert run("decode", tmp_path / "wrong.npy", "--model", tiny_bundle) == 2
    assert "N x 16" in capsys.readouterr().err
    assert run("decode", tmp_path / "missing.npy", "--model", tiny_bundle) == 2
    assert "no such file" in capsys.readouterr().err


def test_arithmetic_and_morph(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    assert run("arithmetic", "Eyeglasses", "--model", tiny_bundle, "-n", 2, "--strengths=-1,0,1",
               "--out", tmp_path / "a.png", "--latents", tmp_path / "a.npy") == 0
    assert np.load(tmp_path / "a.npy").shape == (6, 16)
    grid = Image.open(tmp_path / "a.png")
    assert grid.width == 3 * 34 + 2 and grid.height > 2 * 34 + 2  # a label row above the faces
    assert run("morph", "--model", tiny_bundle, "-n", 2, "--steps", 5, "--method", "slerp",
               "--out", tmp_path / "m.png", "--latents", tmp_path / "m.npy") == 0
    codes = np.load(tmp_path / "m.npy").reshape(2, 5, 16)
    norms = np.linalg.norm(codes, axis=2)
    assert np.all(norms.min(1) > 0.9 * norms[:, [0, -1]].min(1))  # slerp does not cut through the middle
    assert run("morph", "--model", tiny_bundle, "--from", tmp_path / "m.png", "--out", tmp_path / "x.png") == 2
    assert "both --from and --to" in capsys.readouterr().err


def test_reconstruct_images_and_bad_files(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    for i in range(3):
        Image.fromarray(np.full((218, 178, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.jpg")
    flat = [tmp_path / f"{i}.jpg" for i in range(3)]
    assert run("reconstruct", *flat, "--model", tiny_bundle, "--out", tmp_path / "r.png") == 2  # no face in them
    assert "--whole-image" in capsys.readouterr().err
    assert run("reconstruct", *flat, "--model", tiny_bundle, "--whole-image", "--out", tmp_path / "r.png") == 0
    assert Image.open(tmp_path / "r.png").height > 2 * 34  # originals above reconstructions
    (tmp_path / "notes.txt").write_text("not an image")
    assert run("reconstruct", tmp_path / "notes.txt", "--model", tiny_bundle) == 2
    assert "is not a PNG, JPEG" in capsys.readouterr().err


# --- photo editing with the real pretrained decoder -----------------------------------

@pytest.fixture(scope="module")
def portrait(pretrained_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated face, enlarged into a larger picture so the detector has to find it."""
    face = FacePipeline(load_bundle(pretrained_bundle)).generate(n=1, seed=3, temperature=0.6).images[0]
    path = tmp_path_factory.mktemp("photos") / "portrait.jpg"
    photo_of(face, size=(800, 760), at=(140, 50)).save(path, quality=92)
    return path


@pytest.mark.slow
def test_edit_a_photo(pretrained_bundle: Path, portrait: Path, tmp_path: Path):
    out = tmp_path / "edited.png"
    assert run("edit", portrait, "--model", pretrained_bundle, "--attr", "Blond_Hair=2", "--refine-steps", 30,
               "--out", out, "--latents", tmp_path / "codes.npy") == 0
    grid = np.asarray(Image.open(out)).astype(np.float32)
    top = grid.shape[0] - (64 + 4)  # below the label row
    photo, recon, edited = (grid[top + 2:top + 66, 2 + 66 * i:66 + 66 * i] for i in range(3))
    assert np.abs(recon - photo).mean() < 20  # a likeness
    hair = (slice(12, 26), slice(14, 50))
    assert edited[hair].mean() > recon[hair].mean() + 15  # blonder
    assert np.load(tmp_path / "codes.npy").shape == (2, 200)


def test_edit_a_picture_without_a_face(pretrained_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    sky = tmp_path / "sky.png"
    Image.fromarray(np.repeat(np.linspace(90, 230, 500, dtype=np.uint8)[:, None, None], 3, 2).repeat(400, 1)).save(sky)
    assert run("edit", sky, "--model", pretrained_bundle, "--attr", "Smiling=1", "--out", tmp_path / "e.png") == 2
    assert "No face found" in capsys.readouterr().err and not (tmp_path / "e.png").exists()
    assert run("edit", sky, "--model", pretrained_bundle, "--whole-image", "--refine-steps", 5,
               "--out", tmp_path / "e.png") == 0
    assert "whole image" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--out", "--latents"])
def test_an_output_in_a_missing_folder_is_refused_before_the_model_loads(tmp_path: Path, capsys, flag: str):
    missing = tmp_path / "no-such-folder"
    paths = {"--out": tmp_path / "faces.png", "--latents": tmp_path / "codes.npy"}
    paths[flag] = missing / ("x.png" if flag == "--out" else "x.npy")
    argv = ["generate", "--model", tmp_path / "not-a-model", "--out", paths["--out"], "--latents", paths["--latents"]]
    assert run(*argv) == 2
    err = capsys.readouterr().err
    assert f"cannot write {flag}" in err and f"the folder {missing} does not exist" in err and "mkdir -p" in err
    assert not missing.exists()


def test_a_folder_of_pngs_may_be_new_but_its_parent_must_exist(tiny_bundle: Path, tmp_path: Path, capsys):
    assert run("generate", "--model", tiny_bundle, "-n", 2, "--out", tmp_path / "new-folder") == 0
    assert len(list((tmp_path / "new-folder").iterdir())) == 2
    assert run("generate", "--model", tiny_bundle, "-n", 2, "--out", tmp_path / "missing" / "folder") == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "missing").exists()
