"""The Streamlit GUI (facevae/app/gui/) driven by streamlit.testing's AppTest.

Each mode renders, widgets change what is shown, settings go to and come from the URL,
errors appear as messages in the page (never as exceptions), and the model is loaded once
however often the script reruns.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from facevae.inference.inversion import DECODER_ONLY_STEPS
from support.images import png_bytes

MODES = ["generate", "reconstruct", "arithmetic", "morph", "edit", "attributes"]


def image_urls(app) -> list[str]:
    """Media URLs of every image on the page; Streamlit derives them from the image bytes."""
    return [url for image in app.image for url in image.value]


def check_clean(app) -> None:
    """No exception and no error message on the page."""
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


def test_generate_shows_a_grid_with_downloads(gui, tiny_model_bundle: Path):
    app = gui(tiny_model_bundle).run()
    check_clean(app)
    assert app.title[0].value == "Generate faces"
    assert len(image_urls(app)) == 1
    assert image_urls(app)[0].endswith(".png")  # never re-encoded as JPEG
    labels = [button.label for button in app.download_button]
    assert "Download PNG" in labels and "Download latents (.npy)" in labels
    assert app.query_params["mode"] == "generate"
    assert "70 faces, seed 0" in app.image[0].captions[0]


def test_attribute_slider_changes_the_same_faces_and_the_url(gui, tiny_model_bundle: Path):
    app = gui(tiny_model_bundle).run()
    plain = image_urls(app)
    assert "generate-strength-Smiling" not in [slider.key for slider in app.slider]
    app.checkbox(key="generate-use-Smiling").check().run()
    check_clean(app)
    smiling = image_urls(app)
    assert smiling != plain
    assert app.query_params["attrs"] == "Smiling:1"
    app.slider(key="generate-strength-Smiling").set_value(-2.0).run()
    check_clean(app)
    assert image_urls(app) not in (plain, smiling)
    assert app.query_params["attrs"] == "Smiling:-2"
    assert "Smiling -2" in app.image[0].captions[0]
    # back to +1: the same faces as before, so the same bytes
    app.slider(key="generate-strength-Smiling").set_value(1.0).run()
    assert image_urls(app) == smiling
    app.checkbox(key="generate-use-Smiling").uncheck().run()
    assert image_urls(app) == plain
    assert "attrs" not in app.query_params


def test_new_faces_button_changes_seed_and_faces(gui, tiny_model_bundle: Path):
    app = gui(tiny_model_bundle).run()
    before = image_urls(app)
    app.button(key="generate-new").click().run()
    check_clean(app)
    assert image_urls(app) != before
    seed = app.number_input(key="generate-seed").value
    assert seed != 0 and app.query_params["seed"] == str(seed)
    app.slider(key="generate-count").set_value(12).run()
    assert f"12 faces, seed {seed}" in app.image[0].captions[0]


def test_url_restores_mode_seed_and_attributes(gui, tiny_model_bundle: Path):
    app = gui(tiny_model_bundle, query={"mode": "generate", "seed": "7", "attrs": "Eyeglasses:-1.5,Bogus:2"}).run()
    check_clean(app)
    assert app.number_input(key="generate-seed").value == 7
    assert app.checkbox(key="generate-use-Eyeglasses").value
    assert not app.checkbox(key="generate-use-Smiling").value
    assert app.slider(key="generate-strength-Eyeglasses").value == -1.5
    assert app.query_params["attrs"] == "Eyeglasses:-1.5"  # the unknown name is dropped
    shared = gui(tiny_model_bundle, query={"mode": "morph", "seed": "3"}).run()
    assert shared.title[0].value == "Morph faces"
    assert shared.number_input(key="morph-seed").value == 3


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_renders(gui, tiny_model_bundle: Path, mode: str):
    app = gui(tiny_model_bundle, query={"mode": mode}).run()
    check_clean(app)
    assert app.query_params["mode"] == mode
    assert app.markdown, "every mode explains itself"
    if mode in ("generate", "arithmetic", "morph", "attributes"):
        assert image_urls(app), f"{mode} shows a picture without any input"


def test_modes_switch_and_the_model_is_loaded_once(gui, loads, tiny_model_bundle: Path):
    app = gui(tiny_model_bundle).run()
    for mode in MODES:
        app.sidebar.radio(key="mode").set_value(mode).run()
        check_clean(app)
        assert app.query_params["mode"] == mode
    app.sidebar.radio(key="mode").set_value("generate").run()
    app.checkbox(key="generate-use-Smiling").check().run()
    app.slider(key="generate-strength-Smiling").set_value(2.5).run()
    assert loads["model"] == {str(tiny_model_bundle): 1}


def test_arithmetic_changes_with_the_attribute(gui, tiny_model_bundle: Path):
    app = gui(tiny_model_bundle, query={"mode": "arithmetic"}).run()
    smiling = image_urls(app)
    assert "Smiling from -3 to +3" in app.image[0].captions[0]
    app.selectbox(key="arithmetic-attribute").set_value("Eyeglasses").run()
    check_clean(app)
    assert image_urls(app) != smiling
    assert app.query_params["attr"] == "Eyeglasses"


def test_morph_methods_differ(gui, tiny_model_bundle: Path):
    app = gui(tiny_model_bundle, query={"mode": "morph"}).run()
    linear = image_urls(app)
    app.radio(key="morph-method").set_value("slerp").run()
    check_clean(app)
    assert image_urls(app) != linear
    assert "spherical" in app.image[0].captions[0]


def test_reconstruct_generated_faces(gui, tiny_model_bundle: Path):
    app = gui(tiny_model_bundle, query={"mode": "reconstruct"}).run()
    app.radio(key="reconstruct-source").set_value("generated").run()
    check_clean(app)
    assert "reconstructions" in app.image[0].captions[0]
    first = image_urls(app)
    app.button(key="reconstruct-new").click().run()
    assert image_urls(app) != first


def test_reconstruct_validation_split_of_data(gui, loads, tiny_model_bundle: Path, image_folder: Path):
    app = gui(tiny_model_bundle, data=image_folder, query={"mode": "reconstruct"}).run()
    check_clean(app)
    assert app.radio(key="reconstruct-source").value == "validation"
    app.slider(key="reconstruct-count").set_value(2).run()
    first = image_urls(app)
    assert first
    app.number_input(key="reconstruct-seed").set_value(1).run()
    check_clean(app)
    assert image_urls(app) != first  # other validation faces
    assert loads["dataset"] == {str(image_folder): 1}  # prepared and opened once


def test_model_picker_offers_runs_and_switches_model(gui, loads, tiny_model_bundle: Path, tmp_path: Path):
    from facevae.model.bundle import load_bundle, save_bundle

    runs = tmp_path / "runs"
    save_bundle(load_bundle(tiny_model_bundle), runs / "my-run" / "bundle")
    (runs / "not-a-run").mkdir()
    app = gui(tiny_model_bundle, runs_dir=runs).run()
    options = app.sidebar.selectbox(key="model-choice").options
    assert "run: my-run" in options and not any("not-a-run" in o for o in options)
    assert any(o.startswith("celeba64-original") for o in options)
    before = image_urls(app)
    app.sidebar.selectbox(key="model-choice").set_value("run: my-run").run()
    check_clean(app)
    assert loads["model"][str(runs / "my-run")] == 1
    assert image_urls(app) == before  # same weights, same seed: the same faces


def test_no_model_explains_how_to_get_one(gui, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FACEVAE_BASE_URL", "http://127.0.0.1:9/")  # offline: nothing listens there
    app = gui("celeba64-original").run()
    assert not app.exception
    assert "could not be loaded" in app.error[0].value
    page = " ".join(m.value for m in app.markdown)
    assert "facevae download celeba64-original" in page and "facevae train --data CELEBA_DIR --out" in page


def test_a_malformed_model_is_a_message_not_a_traceback(gui, tiny_model_bundle: Path, tmp_path: Path):
    import shutil

    broken = shutil.copytree(tiny_model_bundle, tmp_path / "broken")
    (broken / "config.json").write_text("[1, 2, 3]")  # valid JSON, not a config
    app = gui(broken).run()
    assert not app.exception
    assert "could not be loaded" in app.error[0].value
    assert "Traceback" not in app.error[0].value and 'File "' not in app.error[0].value


def test_edit_photo_before_after_and_sliders(gui, tiny_model_bundle: Path, face_photo_png: bytes):
    app = gui(tiny_model_bundle, query={"mode": "edit"}).run()
    assert app.info  # asks for a photo
    app.file_uploader(key="edit-upload").set_value(("me.png", face_photo_png, "image/png")).run()
    check_clean(app)
    framed, grid = image_urls(app)
    assert "Before and after" in app.image[1].captions[0]
    assert "Download the edited face (PNG)" in [b.label for b in app.download_button]
    app.checkbox(key="edit-use-Smiling").check().run()
    app.slider(key="edit-strength-Smiling").set_value(3.0).run()
    check_clean(app)
    assert image_urls(app)[0] == framed and image_urls(app)[1] != grid
    assert app.query_params["attrs"] == "Smiling:3"
    edited = image_urls(app)[1]
    # Keep holds in the edit mode too. Everything else: on a tiny model the guide is sure of some
    # outputs (a logit beyond KEEP_CLIP), which are rightly not held, but never of all 39.
    app.checkbox(key="edit-keep-all").check().run()
    check_clean(app)
    assert image_urls(app)[1] != edited


def test_edit_tunes_the_decoder_to_the_photo_unless_unticked(gui, tiny_model_bundle: Path, face_photo_png: bytes):
    app = gui(tiny_model_bundle, query={"mode": "edit"}).run()
    app.file_uploader(key="edit-upload").set_value(("me.png", face_photo_png, "image/png")).run()
    assert app.checkbox(key="edit-tune").value  # on by default
    tuned = image_urls(app)[1]
    app.checkbox(key="edit-tune").uncheck().run()
    check_clean(app)
    assert image_urls(app)[1] != tuned


@pytest.mark.parametrize("upload, message", [
    (("notes.png", b"this is text, not a picture", "image/png"), "not a PNG, JPEG"),
    (("huge.png", b"\x89PNG\r\n\x1a\n" + bytes(21 * 1024 * 1024), "image/png"), "the limit is"),
    (("wall.png", png_bytes(Image.new("RGB", (300, 300), (128, 128, 128))), "image/png"), "No face found"),
])
def test_bad_uploads_are_messages(gui, tiny_model_bundle: Path, upload: tuple, message: str):
    app = gui(tiny_model_bundle, query={"mode": "edit"}).run()
    app.file_uploader(key="edit-upload").set_value(upload).run()
    assert not app.exception
    assert message in app.error[0].value and upload[0] in app.error[0].value
    assert "--" not in app.error[0].value  # the GUI's controls, never the CLI's flags
    if message == "No face found":
        assert "Use the whole picture" in app.error[0].value


def test_bad_uploads_in_reconstruct_do_not_stop_the_good_ones(gui, tiny_model_bundle: Path):
    good = png_bytes(Image.new("RGB", (40, 48), (200, 150, 120)))
    app = gui(tiny_model_bundle, query={"mode": "reconstruct"}).run()
    app.checkbox(key="reconstruct-whole").check()
    app.file_uploader(key="reconstruct-upload").set_value(
        [("good.png", good, "image/png"), ("bad.jpg", b"nope", "image/jpeg")]).run()
    assert not app.exception
    assert "bad.jpg" in app.error[0].value
    assert image_urls(app)


def test_decoder_only_model_offers_optimisation(gui, decoder_only_bundle: Path):
    app = gui(decoder_only_bundle, query={"mode": "reconstruct"}).run()
    app.radio(key="reconstruct-source").set_value("generated").run()
    assert not app.exception and not app.error
    assert "no encoder" in app.warning[0].value and "optimisation" in app.warning[0].value
    assert app.slider(key="reconstruct-steps").value == DECODER_ONLY_STEPS  # the default a decoder-only model gets
    assert image_urls(app)
    assert "no encoder" in app.sidebar.caption[0].value


def test_keep_unchanged_changes_the_faces_and_offers_only_unedited_attributes(gui, tiny_model_bundle: Path):
    app = gui(tiny_model_bundle).run()
    assert "generate-keep" not in [select.key for select in app.multiselect]  # nothing edited, nothing to keep
    app.checkbox(key="generate-use-Smiling").check().run()
    edited = image_urls(app)
    keep = app.multiselect(key="generate-keep")
    assert keep.options == ["Eyeglasses"]  # the edited attribute cannot also be kept
    keep.select("Eyeglasses").run()
    check_clean(app)
    kept = image_urls(app)
    assert kept != edited
    app.selectbox(key="generate-keep-mode").select("decoded").run()
    check_clean(app)
    assert image_urls(app) not in (edited, kept)
    app.checkbox(key="generate-use-Eyeglasses").check().run()  # the kept attribute becomes an edited one
    check_clean(app)
    assert app.multiselect(key="generate-keep").value == []


def test_arithmetic_keeps_the_chosen_attributes(gui, tiny_model_bundle: Path):
    app = gui(tiny_model_bundle, query={"mode": "arithmetic", "attr": "Smiling"}).run()
    plain = image_urls(app)
    app.multiselect(key="arithmetic-keep").select("Eyeglasses").run()
    check_clean(app)
    assert image_urls(app) != plain
    app.selectbox(key="arithmetic-attribute").select("Eyeglasses").run()
    check_clean(app)
    assert app.multiselect(key="arithmetic-keep").options == ["Smiling"]


def test_discovered_directions_are_shown_for_a_model_without_labels(gui, tiny_model_bundle: Path, tmp_path: Path):
    from facevae.model.bundle import load_bundle, save_bundle

    model = load_bundle(tiny_model_bundle)
    model.attributes, model.attribute_counts = {}, {}
    unlabelled = save_bundle(model, tmp_path / "unlabelled")
    app = gui(unlabelled, query={"mode": "attributes"}).run()
    check_clean(app)
    assert any("Discovered directions" in header.value for header in app.subheader)
    first = image_urls(app)
    assert len(first) == 1
    app.slider(key="discovered-count").set_value(3).run()
    check_clean(app)
    assert image_urls(app) != first
