"""Weak attributes from a registry model's stored edit quality (inference/edit_quality.py), and the
note the CLI prints when one is edited."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from facevae.inference import edit_quality

RECORD = {"model": "demo", "attributes": {
    "Eyeglasses": {"success": 0.05, "leak_worst": 0.31, "leak_worst_attribute": "Male"},
    "Smiling": {"success": 0.62, "leak_worst": 0.1, "leak_worst_attribute": "High_Cheekbones"},
    "Young": {"success": 0.2, "leak_worst": 0.1, "leak_worst_attribute": "Gray_Hair"},
    "Male": {"success": 0.7, "leak_worst": 0.74, "leak_worst_attribute": "Wearing_Lipstick"}}}


@pytest.fixture
def quality_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "demo.json").write_text(json.dumps(RECORD))
    monkeypatch.setattr(edit_quality, "QUALITY_DIR", tmp_path)
    return tmp_path


def test_weak_attributes_say_what_the_edit_does_instead(quality_dir: Path) -> None:
    model = SimpleNamespace(provenance={"registry_name": "demo"})
    weak = edit_quality.weak_attributes(model)
    assert set(weak) == {"Eyeglasses", "Young"}  # Smiling and Male succeed (Male drags lipstick along, but draws)
    assert "barely draws" in weak["Eyeglasses"] and "changes Male more (by 0.31)" in weak["Eyeglasses"]
    assert "changes" not in weak["Young"]  # weak, but nothing else moves more
    assert edit_quality.weak_notes(model, ["Smiling", "Eyeglasses", "Eyeglasses"]) == [weak["Eyeglasses"]]
    assert edit_quality.weak_attributes(SimpleNamespace(provenance={"registry_name": "other"})) == {}
    assert edit_quality.weak_attributes(SimpleNamespace(provenance={})) == {}


def test_the_shipped_record_of_celeba64_original_is_readable() -> None:
    record = json.loads((edit_quality.QUALITY_DIR / "celeba64-original.json").read_text())
    assert record["model"] == "celeba64-original" and len(record["attributes"]) == 40
    weak = edit_quality.weak_attributes(SimpleNamespace(provenance={"registry_name": "celeba64-original"}))
    assert "Eyeglasses" in weak and "Male" not in weak


def test_cli_prints_a_note_for_a_weak_edited_attribute(quality_dir: Path, tiny_bundle: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from facevae.cli.main import main

    monkeypatch.setattr(edit_quality, "stored_quality", lambda model: RECORD)
    assert main(["generate", "--model", str(tiny_bundle), "-n", "1", "--attr", "Eyeglasses=1",
                 "--out", str(tmp_path / "f.png")]) == 0
    assert "note: Eyeglasses: this model barely draws it" in capsys.readouterr().err


def test_a_record_in_the_bundle_folder_comes_first_and_a_damaged_one_claims_nothing(quality_dir: Path,
                                                                                     tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    model = SimpleNamespace(provenance={"registry_name": "demo"}, path=bundle)
    assert set(edit_quality.weak_attributes(model)) == {"Eyeglasses", "Young"}  # the registry's record
    scores = [{"attribute": "Smiling", "success": 0.1, "leak_worst": 0.3, "leak_worst_attribute": "Male"}]
    written = edit_quality.write_quality(bundle, edit_quality.quality_record("mine", scores, 12, "judge", "faces"))
    assert written == bundle / edit_quality.QUALITY_FILE
    assert json.loads(written.read_text())["faces"] == 12
    assert set(edit_quality.weak_attributes(model)) == {"Smiling"}  # the bundle's own record
    written.write_text('{"attributes": {"Smiling": {"success": "?"}}}')  # damaged (and newer)
    assert edit_quality.weak_attributes(model) == {}
    written.write_text("not json")
    assert edit_quality.weak_attributes(model) == {}
