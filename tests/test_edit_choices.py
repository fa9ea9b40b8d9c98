"""facevae.edit_choices: the keep modes, strengths and labels every front end shares."""

from __future__ import annotations

import subprocess
import sys
import typing

from facevae import edit_choices
from facevae.edit_choices import DEFAULT_STRENGTHS, KEEP_MODES, SERVER_KEEP_MODES, keep_mode_help, strength_label


def test_every_front_end_offers_the_shared_modes():
    from facevae.app.gui.common import KEEP_MODE_LABELS
    from facevae.app.server import schemas
    from facevae.cli.main import build_parser
    from facevae.inference import directions

    assert directions.KEEP_MODES is KEEP_MODES and directions.GROUP_COSINE == edit_choices.GROUP_COSINE
    assert list(KEEP_MODE_LABELS) == list(KEEP_MODES)
    assert typing.get_args(schemas.KeepModeName) == SERVER_KEEP_MODES and set(SERVER_KEEP_MODES) < set(KEEP_MODES)
    generate = build_parser()._subparsers._group_actions[0].choices["generate"]
    keep_mode = next(action for action in generate._actions if action.dest == "keep_mode")
    assert keep_mode.choices == list(KEEP_MODES) and keep_mode.default == edit_choices.DEFAULT_KEEP_MODE


def test_help_text_states_the_threshold_once():
    text = keep_mode_help()
    assert text.startswith("auto (default): ") and f"cosine {edit_choices.GROUP_COSINE:g}" in text
    assert "decoded" not in keep_mode_help(SERVER_KEEP_MODES)


def test_strength_labels_and_defaults():
    assert [strength_label(s) for s in DEFAULT_STRENGTHS] == ["-3", "-2", "-1", "0", "+1", "+2", "+3"]
    assert strength_label(1.5) == "+1.5" and strength_label(-0.0) == "0"


def test_importing_it_does_not_import_torch():
    code = "import sys, facevae.edit_choices; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
