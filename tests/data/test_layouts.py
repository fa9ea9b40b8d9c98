from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from facevae.data.layouts import DataLayoutError, detect_layout
from facevae.testing.celeba import make_celeba


@pytest.mark.parametrize("layout, kind, image_dir, attributes, partition", [
    ("official", "official", "img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt"),
    ("kaggle", "kaggle", "img_align_celeba/img_align_celeba", "list_attr_celeba.csv", "list_eval_partition.csv"),
    ("torchvision", "torchvision", "celeba/img_align_celeba", "celeba/list_attr_celeba.txt",
     "celeba/list_eval_partition.txt"),
    ("folder", "folder", ".", "attributes.csv", None),
])
def test_each_layout_is_recognised(tmp_path, layout, kind, image_dir, attributes, partition):
    make_celeba(tmp_path, layout, count=6)
    found = detect_layout(tmp_path)
    assert found.kind == kind
    assert found.image_dir == (tmp_path / image_dir).absolute()
    assert found.attributes_file == tmp_path / attributes
    assert found.partition_file == (tmp_path / partition if partition else None)
    assert found.notes == []
    names, sizes = found.list_images()
    assert len(names) == 6 and all(size > 0 for size in sizes)
    assert all((tmp_path / name).is_file() for name in names)


def test_google_drive_tree_with_anno_and_eval_folders(tmp_path):
    make_celeba(tmp_path, "official", count=4)
    (tmp_path / "Img").mkdir(), (tmp_path / "Anno").mkdir(), (tmp_path / "Eval").mkdir()
    shutil.move(tmp_path / "img_align_celeba", tmp_path / "Img" / "img_align_celeba")
    shutil.move(tmp_path / "list_attr_celeba.txt", tmp_path / "Anno" / "list_attr_celeba.txt")
    shutil.move(tmp_path / "list_eval_partition.txt", tmp_path / "Eval" / "list_eval_partition.txt")
    found = detect_layout(tmp_path)
    assert (found.kind, found.attributes_file.parent.name, found.partition_file.parent.name) == \
        ("official", "Anno", "Eval")


def test_folder_layout_walks_subfolders_and_skips_hidden_ones(tmp_path):
    fixture = make_celeba(tmp_path, "folder", count=10, attributes=False)
    (tmp_path / ".facevae-cache").mkdir()
    shutil.copy(tmp_path / fixture.names[0], tmp_path / ".facevae-cache" / "stray.jpg")
    found = detect_layout(tmp_path)
    names, _ = found.list_images()
    assert names == sorted(fixture.names)
    assert {Path(name).suffix for name in names} == {".jpg", ".png", ".webp"}
    assert found.attributes_file is None and "no attribute CSV" in found.notes[0]


def test_missing_label_files_are_noted_not_fatal(tmp_path):
    make_celeba(tmp_path, "official", count=3, partition=False, attributes=False)
    notes = " ".join(detect_layout(tmp_path).notes)
    assert "no list_attr_celeba.txt" in notes and "no list_eval_partition.txt" in notes and "seeded" in notes


def test_empty_folder_message_names_what_is_missing(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(DataLayoutError) as error:
        detect_layout(tmp_path)
    message = str(error.value)
    for expected in ("img_align_celeba/", "list_attr_celeba.txt", "list_eval_partition.txt", "celeba/",
                     ".jpg", ".png", ".webp", "readme.txt"):
        assert expected in message


def test_labels_without_images_say_where_images_go_and_to_unzip(tmp_path):
    make_celeba(tmp_path, "official", count=2)
    shutil.rmtree(tmp_path / "img_align_celeba")
    (tmp_path / "img_align_celeba.zip").write_bytes(b"PK")
    with pytest.raises(DataLayoutError) as error:
        detect_layout(tmp_path)
    message = str(error.value)
    assert "list_attr_celeba.txt" in message and "has no images" in message
    assert str(tmp_path / "img_align_celeba") in message and "unzip" in message


def test_empty_image_folder_is_reported(tmp_path):
    (tmp_path / "img_align_celeba").mkdir()
    with pytest.raises(DataLayoutError, match="img_align_celeba/.*has no images"):
        detect_layout(tmp_path)


def test_not_a_folder_and_missing_folder_and_cache(tmp_path, celeba_cache):
    with pytest.raises(DataLayoutError, match="does not exist"):
        detect_layout(tmp_path / "nope")
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(DataLayoutError, match="is a file"):
        detect_layout(tmp_path / "file.jpg")
    with pytest.raises(DataLayoutError, match="already a prepared cache"):
        detect_layout(celeba_cache)


def test_several_csv_files_in_an_image_folder_are_ambiguous(tmp_path):
    make_celeba(tmp_path, "folder", count=3, attributes=False)
    (tmp_path / "a.csv").write_text("filename,Smiling\n")
    (tmp_path / "b.csv").write_text("filename,Smiling\n")
    with pytest.raises(DataLayoutError, match="several CSV files.*attributes.csv"):
        detect_layout(tmp_path)
