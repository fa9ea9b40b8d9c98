"""The `facevae` entry point: every subcommand is listed, user errors exit 2 without a traceback."""

import subprocess
import sys

import pytest

from facevae.cli.main import COMMAND_MODULES, build_parser, main

SUBCOMMANDS = ["prepare", "train", "bundle", "download", "models", "import-keras", "import-seed", "export",
               "attributes", "generate", "reconstruct", "arithmetic", "morph", "decode", "edit", "directions",
               "classifier", "evaluate", "gui", "serve"]


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out
    assert list(build_parser()._subparsers._group_actions[0].choices) == SUBCOMMANDS  # in --help order
    assert len(COMMAND_MODULES) == len(SUBCOMMANDS) - 5  # synthesis registers six commands


def test_no_subcommand_prints_help(capsys):
    assert main([]) == 0
    assert "usage: facevae" in capsys.readouterr().out


def test_user_error_exits_2_with_the_message_and_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "facevae", "generate", "--model", str(tmp_path), "--out",
                             str(tmp_path / "x.png")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "is neither a bundle" in result.stderr
    assert "Traceback" not in result.stderr


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_importing_the_cli_does_not_import_torch():
    result = _run_python("import sys, facevae.cli.main; assert 'torch' not in sys.modules, 'torch imported'")
    assert result.returncode == 0, result.stderr


def test_help_of_facevae_and_of_every_command_imports_no_torch():
    code = f"""
import contextlib, io, sys
from facevae.cli.main import main
for argv in [["--help"]] + [[name, "--help"] for name in {SUBCOMMANDS!r}]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(argv)
    assert "torch" not in sys.modules, f"facevae {{' '.join(argv)}} imported torch"
"""
    result = _run_python(code)
    assert result.returncode == 0, result.stderr


def _photo(path):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    return str(path)


@pytest.mark.parametrize("command, blocked, extra", [
    (["serve"], ["fastapi", "uvicorn"], "serve"),
    (["gui"], ["streamlit"], "gui"),
    (["export", "MODEL", "--format", "onnx"], ["onnx"], "export"),
    (["edit", "PHOTO"], ["cv2"], "edit"),
])
def test_a_missing_optional_extra_names_its_pip_install(tiny_bundle, tmp_path, command, blocked, extra):
    stand_ins = {"PHOTO": _photo(tmp_path / "me.png"), "MODEL": str(tiny_bundle)}
    argv = [stand_ins.get(arg, arg) for arg in command]
    argv += [] if "MODEL" in command else ["--model", str(tiny_bundle)]
    argv += ["--out", str(tmp_path / "out.png")] if extra == "edit" else []
    result = _run_python(f"import sys\nfor name in {blocked!r}: sys.modules[name] = None\n"
                         f"from facevae.cli.main import main\nsys.exit(main({argv!r}))")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: ")
    assert f'pip install "facevae[{extra}]"' in result.stderr


@pytest.mark.parametrize("command", [
    ["import-keras", "decoder.keras", "--out", "MISSING/bundle"],
    ["import-seed", "vae.pth", "--out", "MISSING/bundle"],
    ["export", "BUNDLE", "--format", "keras", "--out", "MISSING/keras"],
    ["bundle", "run", "--out", "MISSING/bundle"],
    ["attributes", "--model", "BUNDLE", "--report", "MISSING/report"],
])
def test_every_output_folder_must_have_an_existing_parent(tiny_bundle, tmp_path, capsys, command):
    missing = tmp_path / "no-such-folder"
    argv = [str(missing) + arg[len("MISSING"):] if arg.startswith("MISSING") else arg for arg in command]
    argv = [str(tiny_bundle) if arg == "BUNDLE" else arg for arg in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"the folder {missing} does not exist. Create it first" in err and not missing.exists()
