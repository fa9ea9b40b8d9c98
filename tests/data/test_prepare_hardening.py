"""`prepare` under hostile conditions: killed with kill -9, a nearly full disk (issue 19, items 9 and 14)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import facevae.data.prepare as prepare_module
from facevae.config import DataConfig, Preprocessing
from facevae.data.prepare import ensure_cache
from facevae.errors import UserError
from facevae.testing.celeba import make_celeba

# Runs prepare with two workers whose every chunk takes a minute: they are busy when the test kills the parent.
SLOW_PREPARE = """
import sys, time
import facevae.data.prepare as prepare_module
from facevae.config import Preprocessing

def slow(paths, spec):
    time.sleep(60)

prepare_module.decode_chunk = slow
prepare_module.prepare(sys.argv[1], out=sys.argv[2], preprocessing=Preprocessing(32), workers=2, progress=False)
"""


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table from /proc (Linux)")
def test_workers_exit_when_prepare_is_killed_with_sigkill(tmp_path: Path):
    make_celeba(tmp_path / "data", "official", count=40)
    child = subprocess.Popen([sys.executable, "-c", SLOW_PREPARE, str(tmp_path / "data"), str(tmp_path / "cache")])
    try:
        deadline = time.monotonic() + 60
        while len(workers := _children(child.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) >= 2, "prepare started no worker processes"
        time.sleep(1)  # the workers are inside a chunk now
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = [pid for pid in workers if _alive(pid)]
    finally:
        child.kill()
    for pid in survivors:  # clean up before failing, so no test leaves processes behind
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"worker processes {survivors} outlived prepare by 10 s"


def test_a_small_disk_shortage_is_said_in_readable_units(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    make_celeba(tmp_path / "data", "official", count=12)
    monkeypatch.setattr(prepare_module.shutil, "disk_usage", lambda path: SimpleNamespace(free=1500))
    with pytest.raises(UserError, match=r"the cache needs 36\.9 KB but .* has 1\.5 KB free"):
        prepare_module.prepare(tmp_path / "data", out=tmp_path / "cache", preprocessing=Preprocessing(32), workers=1,
                               progress=False)


def test_a_reused_cache_is_not_announced_as_being_prepared(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    make_celeba(tmp_path / "data", "official", count=10)
    config = DataConfig(workers=1)
    ensure_cache(tmp_path / "data", config, 32)
    first = capsys.readouterr().err
    ensure_cache(tmp_path / "data", config, 32)
    second = capsys.readouterr().err
    assert "Preparing" in first and "Reusing the prepared cache" in second
    assert "preparing one first" not in first + second
