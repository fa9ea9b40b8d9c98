"""Training checkpoints: everything needed to resume, readable with weights_only=True.

A checkpoint (`checkpoints/last.pt`, `checkpoints/best.pt`) is a dict of tensors and plain
values only:

    format, format_version, facevae_version, torch_version
    config        the full run config as a dict (model, data, train)
    model         the FaceVAE state dict
    optimizer     Adam's state dict
    schedule      the learning-rate schedule's state (training.schedule.LRSchedule)
    progress      epoch, batch_in_epoch, step, best_val, bad_validations, images_seen
    rng           one entry per rank: python, numpy, torch and CUDA generator states
    data          the cache it trained on: path, preprocessing, source

Writing goes to a temporary file in the same folder that is renamed over the old one, so a
crash (even SIGKILL) leaves either the old or the new checkpoint, never half of one.
Checkpoints are for resuming; bundles (facevae.model.bundle) are for inference.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..config import ModelConfig, to_dict
from ..errors import UserError

CHECKPOINT_FORMAT = "facevae-checkpoint"
CHECKPOINT_VERSION = 1
MIN_FREE_BYTES = 1 << 20  # a failed write with less free space than this: the disk is full


class CheckpointError(UserError):
    """A checkpoint that cannot be used: unreadable, or from an incompatible run."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint that could not be written (a full or read-only disk); the old one is kept."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write atomically: a temporary sibling file, flushed to disk, renamed over `path`.
    A write that fails (disk full, read-only) leaves the old file and raises CheckpointWriteError."""
    path = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
               "facevae_version": __version__, "torch_version": torch.__version__.split("+")[0], **state}
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as error:
        raise CheckpointWriteError(write_failure(path, error, _resume_hint(path))) from None
    except RuntimeError as error:  # torch's zip writer reports a short write as "unexpected pos"
        if not _is_write_failure(error):
            raise
        full = shutil.disk_usage(path.parent).free < MIN_FREE_BYTES
        cause = OSError(errno.ENOSPC, "No space left on device") if full else OSError(errno.EIO, str(error))
        raise CheckpointWriteError(write_failure(path, cause, _resume_hint(path))) from None
    finally:
        if tmp is not None and Path(tmp).exists():
            Path(tmp).unlink(missing_ok=True)
    return path


def _resume_hint(path: Path) -> str:
    if (path.parent / "last.pt").is_file():
        return "continue with --resume"
    return "start the run again (it has no last.pt to resume from yet)"


def _is_write_failure(error: RuntimeError) -> bool:
    text = str(error)
    return "unexpected pos" in text or "failed writing" in text or "file write failed" in text


def write_failure(path: Path, error: OSError, then: str = "continue with --resume") -> str:
    """Why `path` could not be written, what is still on disk, and how to go on."""
    cause = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
             errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
             errno.EPERM: "permission denied"}.get(error.errno, error.strerror or str(error))
    kept = (f"The previous {path.name} is unchanged: nothing saved before was lost" if path.is_file()
            else "Nothing saved before was lost")
    return (f"Could not write {path}: {cause}. {kept}. Free some space or make "
            f"{path.parent} writable (or train into another --out), then {then}")


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with torch.load(weights_only=True): no code is ever unpickled."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception:  # torch raises many types for damaged or foreign files; its advice to
        # retry with weights_only=False would unpickle arbitrary code, so it is not repeated
        raise CheckpointError(unreadable(path)) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a facevae training checkpoint (a bundle or another program's file?)")
    if state.get("format_version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} was written by a newer facevae ({state.get('facevae_version')}); "
                              f"upgrade to resume it")
    return state


def unreadable(path: Path) -> str:
    """Why `path` did not load, and the intact checkpoint beside it to resume from instead."""
    with open(path, "rb") as file:
        head = file.read(4)
    if head == b"PK\x03\x04" and not zipfile.is_zipfile(path):
        what = f"{path} is damaged: it ends early (truncated, e.g. by a full disk or an interrupted copy)"
    elif head == b"PK\x03\x04":
        what = (f"{path} is not a facevae checkpoint: it holds Python objects other than tensors and plain "
                f"values, which facevae never unpickles")
    else:
        what = f"{path} is not a readable facevae checkpoint (not a PyTorch checkpoint file)"
    for sibling in sorted(path.parent.glob("*.pt")):
        if sibling != path and _loads(sibling):
            return (f"{what}. {sibling} is intact: to resume from it, copy it over {path.name} "
                    f"(cp {sibling} {path}) and run with --resume again")
    return f"{what}. Start a new run, or restore the file from a backup"


def _loads(path: Path) -> bool:
    try:
        return torch.load(path, map_location="cpu", weights_only=True).get("format") == CHECKPOINT_FORMAT
    except Exception:
        return False


def check_same_model(state: dict[str, Any], model_config: ModelConfig, path: str | Path) -> None:
    """Refuse a checkpoint whose model config differs, naming every differing key."""
    saved = state.get("config", {}).get("model", {})
    current = to_dict(model_config)
    differing = [key for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]
    if differing:
        details = "; ".join(f"model.{key} is {saved.get(key)!r} in the checkpoint, {current.get(key)!r} here"
                            for key in differing)
        raise CheckpointError(
            f"{path} was trained with a different model config ({details}). Resume with the run's own "
            f"config (its config.json, or no --config/--preset/--set model.* options), or start a new run "
            f"with another --out"
        )


# --- random number generator states --------------------------------------------------

def rng_state() -> dict[str, Any]:
    """This process's python, numpy, torch and CUDA generator states, as tensors and plain values."""
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"bit_generator": numpy_state["bit_generator"],
                  "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                  "pos": int(numpy_state["state"]["pos"]),
                  "has_gauss": int(numpy_state["has_gauss"]), "gauss": float(numpy_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() saved (CUDA states only where the same GPUs exist)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    saved = state["numpy"]
    np.random.set_state({"bit_generator": saved["bit_generator"],
                         "state": {"key": saved["key"].cpu().numpy().astype(np.uint32), "pos": saved["pos"]},
                         "has_gauss": saved["has_gauss"], "gauss": saved["gauss"]})
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
