"""The `facevae` entry point: every subcommand is listed, user errors exit 2 without a traceback."""

import subprocess
import sys

import pytest

from facevae.cli.main import COMMAND_MODULES, build_parser, main

SUBCOMMANDS = ["prepare", "train", "bundle", "download", "models", "import-keras", "import-seed", "export",
               "attributes", "classifier", "evaluate", "generate", "reconstruct", "arithmetic", "morph", "decode",
               "edit", "gui", "serve"]


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out
    assert len(COMMAND_MODULES) == len(SUBCOMMANDS)
    assert set(build_parser()._subparsers._group_actions[0].choices) == set(SUBCOMMANDS)


def test_no_subcommand_prints_help(capsys):
    assert main([]) == 0
    assert "usage: facevae" in capsys.readouterr().out


def test_user_error_exits_2_with_the_message_and_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "facevae", "generate", "--model", str(tmp_path), "--out",
                             str(tmp_path / "x.png")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "is neither a bundle" in result.stderr
    assert "Traceback" not in result.stderr
