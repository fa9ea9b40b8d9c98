from __future__ import annotations

import numpy as np
import pytest

from facevae.data.labels import CELEBA_ATTRIBUTES, LabelError, read_attributes, read_partition
from facevae.testing.celeba import CELEBA_ATTRIBUTES as FIXTURE_ATTRIBUTES
from facevae.testing.celeba import make_celeba


def test_the_40_official_attribute_names_in_order():
    assert len(CELEBA_ATTRIBUTES) == 40
    assert CELEBA_ATTRIBUTES[0] == "5_o_Clock_Shadow" and CELEBA_ATTRIBUTES[20] == "Male"
    assert CELEBA_ATTRIBUTES[31] == "Smiling" and CELEBA_ATTRIBUTES[-1] == "Young"
    assert list(CELEBA_ATTRIBUTES) == FIXTURE_ATTRIBUTES


@pytest.mark.parametrize("layout, attr_file, part_file", [
    ("official", "list_attr_celeba.txt", "list_eval_partition.txt"),
    ("kaggle", "list_attr_celeba.csv", "list_eval_partition.csv"),
])
def test_official_and_kaggle_label_files_read_the_same(tmp_path, layout, attr_file, part_file):
    fixture = make_celeba(tmp_path, layout, count=12)
    table = read_attributes(tmp_path / attr_file)
    assert table.attribute_names == list(CELEBA_ATTRIBUTES)
    assert table.names == [f"{i:06d}.jpg" for i in range(1, 13)]
    assert table.values.dtype == np.int8 and set(np.unique(table.values)) <= {0, 1}
    np.testing.assert_array_equal(table.values, fixture.attributes)  # -1 -> 0, 1 -> 1
    assert table.declared_count == (12 if layout == "official" else None)
    names, codes = read_partition(tmp_path / part_file)
    assert names == table.names
    np.testing.assert_array_equal(codes, fixture.partition)


def test_bad_attribute_value_names_line_and_attribute(tmp_path):
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text("2\nSmiling Young\n000001.jpg 1 -1\n000002.jpg 1 yes\n")
    with pytest.raises(LabelError, match=r"line 4: attribute Young is 'yes'"):
        read_attributes(path)
    path.write_text("2\nSmiling Young\n000001.jpg 1 -1\n000002.jpg 1 2\n")
    with pytest.raises(LabelError, match=r"line 4: attribute Young is '2'"):
        read_attributes(path)


def test_wrong_number_of_columns_and_bad_count_line(tmp_path):
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text("2\nSmiling Young\n000001.jpg 1 -1\n000002.jpg 1\n")
    with pytest.raises(LabelError, match="line 4: expected a file name and 2 values, found 1 value after"):
        read_attributes(path)
    path.write_text("many\nSmiling Young\n")
    with pytest.raises(LabelError, match="line 1 should be the number of images"):
        read_attributes(path)


def test_csv_with_zero_one_values_and_bad_partition(tmp_path):
    path = tmp_path / "attributes.csv"
    path.write_text("filename,Smiling,Glasses\na.jpg,1,0\nsub/b.png,0,1\n")
    table = read_attributes(path)
    assert table.names == ["a.jpg", "sub/b.png"] and table.attribute_names == ["Smiling", "Glasses"]
    np.testing.assert_array_equal(table.values, [[1, 0], [0, 1]])
    partition = tmp_path / "list_eval_partition.txt"
    partition.write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(LabelError, match=r"line 2: expected a file name and 0 \(train\)"):
        read_partition(partition)


@pytest.mark.parametrize("text, line", [("a.jpg 0\nb.jpg 0 1\n", 2), ("a.jpg 0\nb.jpg\n", 2),
                                        ("a.jpg x\n", 1), ("a.jpg 1\n\nb.jpg 12\n", 3)])
def test_malformed_partition_rows_name_their_line(tmp_path, text, line):
    path = tmp_path / "list_eval_partition.txt"
    path.write_text(text)
    with pytest.raises(LabelError, match=f"line {line}: expected a file name and 0"):
        read_partition(path)
    csv = tmp_path / "list_eval_partition.csv"
    csv.write_text("image_id,partition\na.jpg,1\nb.jpg,1,2\n")
    with pytest.raises(LabelError, match="line 3: expected a file name"):
        read_partition(csv)


def test_a_csv_without_a_header_row_is_refused_not_read_as_names(tmp_path):
    path = tmp_path / "attributes.csv"
    path.write_text("a.jpg,1,0\nb.jpg,0,1\n")
    with pytest.raises(LabelError, match="has no header row: its first line holds values"):
        read_attributes(path)
    partition = tmp_path / "list_eval_partition.csv"
    partition.write_text("a.jpg,0\nb.jpg,1\n")
    with pytest.raises(LabelError, match="has no header row"):
        read_partition(partition)


def test_a_csv_field_over_the_csv_modules_limit_is_a_label_error(tmp_path):
    path = tmp_path / "attributes.csv"
    path.write_text("filename,Smiling\n" + "x" * 200_000 + ",1\n")
    with pytest.raises(LabelError, match="line 2 is not a readable CSV row .*field larger than field limit"):
        read_attributes(path)
