"""facevae.evaluation.similarity: the cosine matrix of attribute vectors, its heatmap and CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facevae.errors import UserError
from facevae.evaluation import similarity


def test_cosine_report(tmp_path: Path):
    vectors = {"A": torch.tensor([1.0, 0.0]), "B": torch.tensor([0.0, 2.0]), "C": torch.tensor([-1.0, 1.0])}
    matrix = similarity.cosine_matrix(vectors)
    assert np.allclose(matrix, [[1, 0, -0.7071], [0, 1, 0.7071], [-0.7071, 0.7071, 1]], atol=1e-4)
    png, table = similarity.write_similarity_report(vectors, tmp_path / "report")
    rows = list(csv.reader(table.open()))
    assert rows[0] == ["attribute", "A", "B", "C"] and float(rows[3][1]) == pytest.approx(-0.7071, abs=1e-4)
    picture = np.asarray(Image.open(png))
    label = picture.shape[0] - 3 * 14 - 1 - 44  # the names' margin: the picture is names + cells + legend
    corner = label + 2 * 14 + 7
    assert (picture[corner, corner] == similarity._colour(1.0)).all()  # the diagonal cell at the bottom right
    assert (picture[corner, corner - 14] == similarity._colour(0.7071)).all()  # B, C
    legend = label + 3 * 14 + 10 + 6  # the colour bar's middle row: blue (-1) on the left, red (+1) on the right
    for x, cosine in ((label + 2, -1.0), (label + 80, 0.0), (label + 157, 1.0)):
        assert np.abs(picture[legend, x].astype(int) - similarity._colour(cosine)).max() <= 8
    with pytest.raises(UserError, match="at least two"):
        similarity.write_similarity_report({"A": vectors["A"]}, tmp_path)
