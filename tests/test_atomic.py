"""Staged folders: a killed writer's leftovers are swept, published files all get the normal mode."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from facevae.atomic import make_staging_dir, staged_dir
from facevae.model.bundle import load_bundle, save_bundle


def _killed_while_staging(target: Path) -> Path:
    """Run a process that starts staging `target`, writes a file, then is SIGKILLed."""
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from facevae.atomic import make_staging_dir
        tmp = make_staging_dir(Path({str(target)!r}))
        (tmp / "decoder.safetensors").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == -signal.SIGKILL
    (leftover,) = target.parent.glob(f".{target.name}.partial-*")
    return leftover


def test_a_killed_install_leaves_a_folder_that_the_next_one_sweeps(tiny_bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "models" / "tiny"
    leftover = _killed_while_staging(target)
    save_bundle(load_bundle(tiny_bundle), target)
    assert not leftover.exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny"]


def test_a_live_writers_staging_folder_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "cache"
    ours = make_staging_dir(target)  # this process is alive: its folder is in use
    other_target = tmp_path / "cached"  # a name that starts the same is another target's
    theirs = _killed_while_staging(other_target)
    with staged_dir(target) as tmp:
        (tmp / "x").write_text("x")
    assert ours.is_dir() and theirs.is_dir() and (target / "x").is_file()


def test_a_staging_folder_of_another_host_is_kept_until_it_is_old(tmp_path: Path) -> None:
    target = tmp_path / "b"
    recent = tmp_path / ".b.partial-otherhost-1-abc"
    old = tmp_path / ".b.partial-otherhost-2-def"
    recent.mkdir(), old.mkdir()
    os.utime(old, (0, 0))
    make_staging_dir(target)
    assert recent.is_dir() and not old.exists()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_file_of_a_bundle_gets_the_same_normal_mode(tiny_bundle: Path, tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        path = save_bundle(load_bundle(tiny_bundle), tmp_path / "bundle")
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()}
    assert set(modes) >= {"config.json", "decoder.safetensors", "encoder.safetensors", "attributes.safetensors"}
    assert set(modes.values()) == {0o666 & ~umask}, modes
    assert stat.S_IMODE(path.stat().st_mode) == 0o777 & ~umask


def test_installing_any_model_sweeps_what_killed_installs_left(tiny_bundle: Path, facevae_home: Path) -> None:
    from facevae.hub import install, registry

    models = facevae_home / "models"
    leftover = _killed_while_staging(models / "some-other-model")
    target = registry.bundle_path(registry.DEFAULT_MODEL)
    save_bundle(load_bundle(tiny_bundle), target)  # installed: install() returns it without converting
    assert install.install(registry.DEFAULT_MODEL) == target
    assert not leftover.exists()
