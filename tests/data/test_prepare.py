from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import facevae.data.prepare as prepare_module
from facevae.config import DataConfig, Preprocessing
from facevae.data.cache import CacheError, ImageCache, is_cache
from facevae.data.decode import decode_file
from facevae.data.labels import CELEBA_ATTRIBUTES
from facevae.data.prepare import default_cache_dir, describe_cache, ensure_cache, prepare
from facevae.errors import UserError
from facevae.testing.celeba import make_celeba


def test_cache_holds_the_good_images_with_their_labels(celeba, celeba_cache):
    cache = ImageCache.open(celeba_cache)
    assert cache.filenames == celeba.good  # 300 - 2 damaged - 1 without attribute row, in order
    assert len(cache) == 297 and cache.images.shape == (297, 64, 64, 3) and cache.images.dtype == np.uint8
    assert cache.attribute_names == list(CELEBA_ATTRIBUTES)
    rows = [celeba.names.index(name) for name in celeba.good]
    np.testing.assert_array_equal(cache.attributes, celeba.attributes[rows])
    np.testing.assert_array_equal(cache.split, celeba.partition[rows])  # the official partition
    assert cache.meta["preprocessing"] == {"image_size": 64, "crop": "squash", "crop_size": 148}


def test_cache_pixels_equal_a_direct_decode(celeba, celeba_cache):
    cache = ImageCache.open(celeba_cache)
    for row in (0, 1, 150, len(cache) - 1):
        expected = decode_file(celeba.root / cache.filenames[row], Preprocessing(64, "squash"))
        np.testing.assert_array_equal(cache.images[row], expected)


def test_problems_are_counted_and_listed(celeba, celeba_cache):
    meta = json.loads((celeba_cache / "meta.json").read_text())
    assert meta["problems"] == {"unreadable": 2, "no-attribute-row": 1, "attribute-row-without-image": 1,
                                "partition-row-without-image": 1}
    lines = [line.split("\t") for line in (celeba_cache / "report.txt").read_text().splitlines()[1:]]
    by_kind = {}
    for kind, name, _ in lines:
        by_kind.setdefault(kind, []).append(name)
    assert sorted(by_kind["unreadable"]) == sorted(celeba.corrupt)
    assert by_kind["no-attribute-row"] == celeba.missing_row
    assert by_kind["attribute-row-without-image"] == celeba.extra_rows
    summary = describe_cache(celeba_cache)
    assert "unreadable or truncated images skipped: 2" in summary and "report.txt" in summary
    assert "297 images" in summary and "(partition file)" in summary


def test_seeded_split_when_there_is_no_partition_file(tmp_path):
    make_celeba(tmp_path / "data", "official", count=40, partition=False)
    cache = ImageCache.open(prepare(tmp_path / "data", preprocessing=Preprocessing(32), val_fraction=0.2,
                                    test_fraction=0.1,
                                    split_seed=5, workers=1, progress=False))
    assert cache.meta["split_counts"] == {"train": 28, "valid": 8, "test": 4}
    assert cache.meta["reuse_key"]["split"] == {"mode": "seeded", "val_fraction": 0.2, "test_fraction": 0.1, "seed": 5}


@pytest.mark.parametrize("layout", ["kaggle", "torchvision"])
def test_other_celeba_layouts_prepare_the_same_way(tmp_path, layout):
    fixture = make_celeba(tmp_path, layout, count=20, missing_row=1)
    cache = ImageCache.open(prepare(tmp_path, preprocessing=Preprocessing(32), workers=1, progress=False))
    assert cache.filenames == fixture.good and cache.meta["source"]["layout"] == layout
    rows = [fixture.names.index(name) for name in fixture.good]
    np.testing.assert_array_equal(cache.attributes, fixture.attributes[rows])
    np.testing.assert_array_equal(cache.split, fixture.partition[rows])


def test_image_folder_with_attribute_csv(tmp_path):
    fixture = make_celeba(tmp_path, "folder", count=25, missing_row=1)
    cache = ImageCache.open(prepare(tmp_path, preprocessing=Preprocessing(32), workers=1, progress=False))
    assert sorted(cache.filenames) == sorted(fixture.good)
    assert cache.attribute_names == list(CELEBA_ATTRIBUTES[:5])
    for row, name in enumerate(cache.filenames):
        np.testing.assert_array_equal(cache.attributes[row], fixture.attributes[fixture.names.index(name), :5])
    assert cache.meta["problems"] == {"no-attribute-row": 1}


def test_csv_naming_bare_files_matches_images_in_subfolders(tmp_path):
    fixture = make_celeba(tmp_path, "folder", count=6, attributes=False)
    rows = "".join(f"{name.rsplit('/', 1)[-1]},{index % 2}\n" for index, name in enumerate(fixture.names))
    (tmp_path / "labels.csv").write_text("image_id,Smiling\n" + rows)
    cache = ImageCache.open(prepare(tmp_path, preprocessing=Preprocessing(32), workers=1, progress=False))
    smiling = {name: int(value) for name, value in zip(cache.filenames, cache.attributes[:, 0])}
    assert smiling == {name: index % 2 for index, name in enumerate(fixture.names)}


def test_prepare_twice_reuses_and_a_changed_source_rebuilds(tmp_path):
    fixture = make_celeba(tmp_path, "official", count=12)
    first = prepare(tmp_path, preprocessing=Preprocessing(32), workers=1, progress=False)
    assert first == default_cache_dir(tmp_path, Preprocessing(32)) == tmp_path / ".facevae-cache" / "32-squash"
    stamp = (first / "meta.json").stat().st_mtime_ns
    assert prepare(tmp_path, preprocessing=Preprocessing(32), workers=1, progress=False) == first
    assert (first / "meta.json").stat().st_mtime_ns == stamp  # reused, not rewritten
    centred = prepare(tmp_path, preprocessing=Preprocessing(32, "center"), workers=1, progress=False)
    assert centred.name == "32-center148"
    os.remove(tmp_path / fixture.names[-1])  # a file disappears: the fingerprint changes
    squashed = prepare(tmp_path, preprocessing=Preprocessing(32), workers=1, progress=False)
    assert ImageCache.open(squashed).meta["count"] == 11
    assert (first / "meta.json").stat().st_mtime_ns != stamp
    assert prepare(tmp_path, preprocessing=Preprocessing(32), workers=1, progress=False, force=True) == first


def test_an_interrupted_prepare_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    make_celeba(tmp_path / "data", "official", count=30)
    real = prepare_module.decode_chunk
    calls = []

    def failing(paths, spec):
        calls.append(len(paths))
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C midway
        return real(paths, spec)

    monkeypatch.setattr(prepare_module, "decode_chunk", failing)
    monkeypatch.setattr(prepare_module, "CHUNK_BYTES", 10 * 32 * 32 * 3)  # 10 images per chunk
    target = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path / "data", out=target, preprocessing=Preprocessing(32), workers=1, progress=False)
    assert len(calls) == 2 and not target.exists() and os.listdir(tmp_path) == ["data"]
    monkeypatch.setattr(prepare_module, "decode_chunk", real)
    prepare(tmp_path / "data", out=target, preprocessing=Preprocessing(32), workers=1, progress=False)
    stamp = (target / "meta.json").read_text()
    calls.clear()
    monkeypatch.setattr(prepare_module, "decode_chunk", failing)
    with pytest.raises(KeyboardInterrupt):  # an interrupted rebuild keeps the old, complete cache
        prepare(tmp_path / "data", out=target, preprocessing=Preprocessing(32), workers=1, progress=False, force=True)
    assert is_cache(target) and (target / "meta.json").read_text() == stamp
    assert sorted(os.listdir(tmp_path)) == ["cache", "data"]


def test_worker_processes_give_the_same_cache(celeba, celeba_cache, tmp_path):
    pooled = ImageCache.open(prepare(celeba.root, out=tmp_path / "pooled", workers=2, progress=False))
    single = ImageCache.open(celeba_cache)
    assert pooled.filenames == single.filenames and pooled.meta["prepared"]["workers"] == 2
    np.testing.assert_array_equal(np.asarray(pooled.images), np.asarray(single.images))
    np.testing.assert_array_equal(pooled.split, single.split)


def test_unwritable_default_location_suggests_out(tmp_path, monkeypatch):
    make_celeba(tmp_path / "data", "official", count=3)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(prepare_module.CacheWriter, "__init__", refuse)
    with pytest.raises(UserError,
                       match=r"cannot write the cache in .*\.facevae-cache \(Permission denied\)\. Pass --out"):
        prepare(tmp_path / "data", workers=1, progress=False)


def test_out_must_not_be_an_unrelated_folder(tmp_path):
    make_celeba(tmp_path / "data", "official", count=3)
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents" / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="is not a facevae cache"):
        prepare(tmp_path / "data", out=tmp_path / "documents", workers=1, progress=False)
    assert (tmp_path / "documents" / "thesis.tex").read_text() == "precious"


def test_no_usable_image_is_an_error(tmp_path):
    (tmp_path / "img_align_celeba").mkdir()
    (tmp_path / "img_align_celeba" / "000001.jpg").write_bytes(b"broken")
    with pytest.raises(UserError, match="none of the 1 images .* could be decoded"):
        prepare(tmp_path, workers=1, progress=False)


def test_ensure_cache_prepares_a_raw_folder_once_and_says_so(tmp_path, capsys):
    make_celeba(tmp_path, "official", count=10)
    config = DataConfig(workers=1)
    cache = ensure_cache(tmp_path, config, 32)
    err = capsys.readouterr().err
    assert "raw data folder" in err and "Preparing" in err and cache.image_size == 32 and len(cache) == 10
    again = ensure_cache(tmp_path, config, 32)
    assert "Reusing" in capsys.readouterr().err and again.path == cache.path
    assert ensure_cache(cache.path, config, 32).path == cache.path  # a cache opens as it is
    with pytest.raises(CacheError, match="image_size=32 but the run asks for image_size=64"):
        ensure_cache(cache.path, config, 64)
    with pytest.raises(CacheError, match="crop=squash but the run asks for crop=center"):
        ensure_cache(cache.path, DataConfig(crop="center"), 32)
    shutil.rmtree(cache.path)
    with pytest.raises(UserError, match="does not exist"):
        ensure_cache(tmp_path / "nowhere", config, 32)


def test_label_files_for_other_images_are_an_error_with_examples(tmp_path):
    make_celeba(tmp_path, "official", count=4)
    for image in (tmp_path / "img_align_celeba").iterdir():
        image.rename(image.with_name("x" + image.name))
    with pytest.raises(UserError, match=r"none of the 4 images .* has its label rows "
                                        r"\(e.g. img_align_celeba/x000001.jpg not in"):
        prepare(tmp_path, workers=1, progress=False)


@pytest.mark.parametrize("options, message", [
    ({"preprocessing": Preprocessing(48)}, "image size must be one of 32, 64, 128, 256, not 48"),
    ({"workers": -1}, "workers must be 0"),
])
def test_options_a_cache_cannot_have_are_user_errors(tmp_path, options, message):
    with pytest.raises(UserError, match=message):
        prepare(tmp_path, progress=False, **options)
