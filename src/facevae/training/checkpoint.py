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
Checkpoints are for resuming; bundles (facevae.hub.bundle) are for inference.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..config import ModelConfig, to_dict
from ..errors import UserError

CHECKPOINT_FORMAT = "facevae-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(UserError):
    """A checkpoint that cannot be used: unreadable, or from an incompatible run."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write atomically: a temporary sibling file, flushed to disk, renamed over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
               "facevae_version": __version__, "torch_version": torch.__version__.split("+")[0], **state}
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with torch.load(weights_only=True): no code is ever unpickled."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many types for damaged or foreign files
        raise CheckpointError(f"{path} is not a readable facevae checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a facevae training checkpoint (a bundle or another program's file?)")
    if state.get("format_version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} was written by a newer facevae ({state.get('facevae_version')}); upgrade to resume it")
    return state


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
