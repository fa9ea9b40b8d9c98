"""FACEVAE_SHARED points the tests at the shared development material on any clone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.shared import REPO_ROOT, SHARED, SHARED_ENV, skip_reason

TEST = "tests/hub/test_pretrained.py::test_registry_checksums_match_the_shared_files"


def _run_test(shared: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, SHARED_ENV: str(shared)}
    return subprocess.run([sys.executable, "-m", "pytest", TEST, "-q", "-rs", "-p", "no:cacheprovider"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_an_empty_shared_folder_skips_with_a_reason_naming_the_variable(tmp_path: Path):
    result = _run_test(tmp_path)
    assert "1 skipped" in result.stdout, result.stdout
    assert SHARED_ENV in result.stdout and str(tmp_path) in result.stdout


@pytest.mark.skipif(not (SHARED / "pretrained").is_dir(), reason=skip_reason("the pretrained/ folder"))
def test_the_variable_points_the_tests_at_another_copy(tmp_path: Path):
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    (copy / "pretrained").symlink_to(SHARED / "pretrained")
    result = _run_test(copy)
    assert "1 passed" in result.stdout, result.stdout
