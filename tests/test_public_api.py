"""The public Python API: the names README.md uses are importable from the top level, whatever
moves inside the package, and `import facevae` alone does not pull in torch."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import facevae

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_public_name_resolves():
    for name in facevae.__all__:
        assert getattr(facevae, name) is not None, name
    assert facevae.FacePipeline.__module__ == "facevae.inference.pipeline"
    assert callable(facevae.load) and callable(facevae.align_face)


def test_readme_python_example_uses_only_top_level_names():
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert "from facevae." not in block and "import facevae." not in block
    used = set(re.findall(r"\bfacevae\.(\w+)", block))
    assert used and used <= set(facevae.__all__), used - set(facevae.__all__)


def test_unknown_attribute_is_an_attribute_error():
    try:
        facevae.no_such_name  # noqa: B018
    except AttributeError as error:
        assert "no_such_name" in str(error)
    else:
        raise AssertionError("facevae.no_such_name resolved")


def test_import_facevae_does_not_import_torch():
    code = "import sys, facevae; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
