"""facevae.cli.attributes: parsing `--orthogonal TARGET:OTHER,OTHER`."""

from __future__ import annotations

import pytest

from facevae.cli.attributes import parse_orthogonal
from facevae.errors import UserError


def test_orthogonal_specs_are_parsed_or_refused():
    assert parse_orthogonal("Eyeglasses:Male, Young") == ("Eyeglasses", ["Male", "Young"])
    for bad in ("Eyeglasses", "Eyeglasses:", ":Male"):
        with pytest.raises(UserError, match="TARGET:OTHER"):
            parse_orthogonal(bad)
