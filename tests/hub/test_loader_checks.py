"""Loaders refuse hostile or damaged files with a message: deep JSON, absurd sizes, NaN
weights, a FIFO in place of a weights file (issue 19, items 7 and 8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from facevae.data.cache import CacheError, ImageCache, is_cache
from facevae.model import classifier as clf
from facevae.model.bundle import BundleError, load_bundle

DEEP = "[" * 100_000 + "]" * 100_000  # deeper than Python's recursion limit


def _edit_config(bundle: Path, change) -> None:
    meta = json.loads((bundle / "config.json").read_text())
    (bundle / "config.json").write_text(json.dumps(change(meta)))


def test_deeply_nested_config_json_is_a_bundle_error(tiny_bundle: Path) -> None:
    (tiny_bundle / "config.json").write_text(DEEP)
    with pytest.raises(BundleError, match="nests lists or objects too deeply"):
        load_bundle(tiny_bundle)


@pytest.mark.parametrize("size", [2**1100, 2**40, 2.0**1000], ids=["2^1100", "2^40", "2.0^1000"])
def test_an_absurd_image_size_is_refused_before_the_config_is_built(tiny_bundle: Path, size) -> None:
    _edit_config(tiny_bundle, lambda meta: {**meta, "model": {**meta["model"], "image_size": size}})
    with pytest.raises(BundleError, match="image_size .* is beyond the 1,024 facevae accepts"):
        load_bundle(tiny_bundle)


def test_nan_weights_are_refused(tiny_bundle: Path) -> None:
    weights = load_file(tiny_bundle / "decoder.safetensors")
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name] = weights[name].clone().fill_(float("nan"))
    save_file(weights, tiny_bundle / "decoder.safetensors")
    with pytest.raises(BundleError, match=f"decoder.safetensors holds NaN or infinite values \\(in {name}\\)"):
        load_bundle(tiny_bundle)


def test_infinite_attribute_vectors_are_refused(tiny_bundle: Path) -> None:
    vectors = load_file(tiny_bundle / "attributes.safetensors")
    vectors["Smiling"] = vectors["Smiling"].clone()
    vectors["Smiling"][3] = float("inf")
    save_file(vectors, tiny_bundle / "attributes.safetensors")
    with pytest.raises(BundleError, match="attributes.safetensors holds NaN or infinite values \\(in Smiling\\)"):
        load_bundle(tiny_bundle)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX feature")
def test_a_fifo_named_like_the_decoder_does_not_hang_the_loader(tiny_bundle: Path) -> None:
    """In a child process: safetensors holds the GIL while it blocks opening a FIFO."""
    fifo = tiny_bundle / "decoder.safetensors"
    fifo.unlink()
    os.mkfifo(fifo)
    code = ("import sys\nfrom facevae.model.bundle import BundleError, load_bundle\n"
            "try:\n    load_bundle(sys.argv[1])\nexcept BundleError as error:\n    print(error)\n")
    try:
        result = subprocess.run([sys.executable, "-c", code, str(tiny_bundle)], capture_output=True, text=True,
                                timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the loader blocked on a FIFO named decoder.safetensors")
    assert "is a FIFO (named pipe), not a regular file" in result.stdout, result.stderr


# --- classifier folders -------------------------------------------------------------------

def _classifier_folder(folder: Path, model: dict) -> Path:
    folder.mkdir(parents=True)
    meta = {"format": clf.CLASSIFIER_FORMAT, "version": clf.CLASSIFIER_VERSION, "model": model}
    (folder / clf.CONFIG_FILE).write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("channels", [[6000] * 4, [10**6] * 4])
def test_a_huge_classifier_is_refused_before_anything_is_allocated(tmp_path: Path, monkeypatch, channels) -> None:
    def refuse(*args, **kwargs):  # a real (not meta-device) module would allocate gigabytes
        if torch.get_default_device().type != "meta":
            raise AssertionError("a module was built before the size check")
        return real(*args, **kwargs)

    real = clf.AttributeClassifier.__init__
    monkeypatch.setattr(clf.AttributeClassifier, "__init__", refuse)
    folder = _classifier_folder(tmp_path / "c", {"image_size": 64, "attribute_names": ["Smiling"],
                                                 "channels": channels})
    with pytest.raises(clf.ClassifierError, match=r"classifier of [\d,]+ parameters .*more than the 67,108,864"):
        clf.load(folder)


def test_a_deeply_nested_classifier_config_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / clf.CONFIG_FILE).write_text(DEEP)
    with pytest.raises(clf.ClassifierError, match="nests lists or objects too deeply"):
        clf.load(folder)


def test_nan_classifier_weights_are_refused(tmp_path: Path) -> None:
    model = {"image_size": 16, "attribute_names": ["Smiling"], "channels": [4, 8]}
    folder = _classifier_folder(tmp_path / "c", model)
    state = clf.AttributeClassifier(clf.from_dict(clf.ClassifierConfig, model)).state_dict()
    state["members.0.head.weight"] = state["members.0.head.weight"].clone().fill_(float("-inf"))
    save_file({k: v.contiguous() for k, v in state.items()}, folder / clf.WEIGHTS_FILE)
    with pytest.raises(clf.ClassifierError, match="NaN or infinite values \\(in members.0.head.weight\\)"):
        clf.load(folder)


def test_a_folder_from_before_ensembles_loads_as_one_member(tmp_path: Path) -> None:
    model = {"image_size": 16, "attribute_names": ["Smiling"], "channels": [4, 8]}
    folder = _classifier_folder(tmp_path / "c", model)
    network = clf.AttributeClassifier(clf.from_dict(clf.ClassifierConfig, model)).eval()
    old_names = {name.removeprefix("members.0."): value for name, value in network.state_dict().items()}
    save_file({k: v.contiguous() for k, v in old_names.items()}, folder / clf.WEIGHTS_FILE)
    images = torch.rand(3, 3, 16, 16)
    torch.testing.assert_close(clf.load(folder)(images), network(images))


def test_a_deeply_nested_cache_meta_is_not_a_cache(tmp_path: Path) -> None:
    (tmp_path / "meta.json").write_text(DEEP)
    assert not is_cache(tmp_path)
    with pytest.raises(CacheError, match="not a prepared cache"):
        ImageCache.open(tmp_path)


def test_nan_in_an_original_attribute_json_is_refused(tmp_path: Path) -> None:
    from facevae.interop.keras import KerasFileError, read_attribute_vectors

    path = tmp_path / "attributes_embedings.json"
    path.write_text('{"Smiling": [0.5, NaN, 1.0]}')
    with pytest.raises(KerasFileError, match="'Smiling' holds NaN or infinite values"):
        read_attribute_vectors(path, 3)
    path.write_text(DEEP)
    with pytest.raises(KerasFileError, match="is not JSON .*nested too deeply"):
        read_attribute_vectors(path, 3)
