"""`facevae gui`: options reach the app, Streamlit is started headless on 127.0.0.1, a registry
model that cannot be downloaded does not stop the GUI (its page explains what to do), and a
mistyped model name or path stops the command with the error.

Streamlit's server itself is replaced by a recorder here; tests/app/test_gui_browser.py
runs the real thing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from facevae.cli.main import main


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    from streamlit.web import bootstrap

    calls: list[dict] = []
    monkeypatch.setattr(bootstrap, "load_config_options", lambda flag_options: None)
    monkeypatch.setattr(bootstrap, "run", lambda script, is_hello, args, flags: calls.append(
        {"script": script, "flags": flags}))
    for name in ("FACEVAE_GUI_MODEL", "FACEVAE_GUI_DATA", "FACEVAE_GUI_RUNS_DIR"):
        monkeypatch.setenv(name, "")  # `run` sets them; monkeypatch restores them afterwards
    return calls


def test_gui_starts_streamlit_headless_with_the_options(started: list[dict], tiny_bundle: Path, tmp_path: Path):
    import os

    assert main(["gui", "--model", str(tiny_bundle), "--data", str(tmp_path), "--runs-dir", str(tmp_path),
                 "--port", "8600"]) == 0
    (call,) = started
    assert Path(call["script"]).name == "script.py" and Path(call["script"]).is_file()
    flags = call["flags"]
    assert flags["server.address"] == "127.0.0.1" and flags["server.port"] == 8600
    assert flags["server.headless"] is True and flags["browser.gatherUsageStats"] is False
    assert os.environ["FACEVAE_GUI_MODEL"] == str(tiny_bundle)
    assert os.environ["FACEVAE_GUI_DATA"] == str(tmp_path.resolve())
    assert os.environ["FACEVAE_GUI_RUNS_DIR"] == str(tmp_path.resolve())


def test_gui_starts_even_without_a_model(started: list[dict], facevae_home: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture):
    monkeypatch.setenv("FACEVAE_BASE_URL", "http://127.0.0.1:9/")  # offline
    assert main(["gui"]) == 0
    assert len(started) == 1
    assert "The GUI starts anyway" in capsys.readouterr().err


def test_gui_rejects_a_missing_data_folder(started: list[dict], tiny_bundle: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture):
    assert main(["gui", "--model", str(tiny_bundle), "--data", str(tmp_path / "nope")]) == 2
    assert not started
    assert "--data" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["nosuchmodel", "runs/no-such-run"])
def test_gui_refuses_a_model_that_is_neither_a_registry_name_nor_a_folder(
        started: list[dict], facevae_home: Path, capsys: pytest.CaptureFixture, model: str):
    assert main(["gui", "--model", model]) == 2
    assert not started
    err = capsys.readouterr().err
    assert model in err and "starts anyway" not in err
