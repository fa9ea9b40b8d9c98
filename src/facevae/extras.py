"""Optional extras: the one place that turns a missing optional package into a UserError
that names the `pip install "facevae[EXTRA]"` which brings it.

    require_extra("serve")            # before a command's real work starts
    cv2 = import_optional("cv2")      # a module of an extra, where it is needed
    missing_extra_error(error)        # a ModuleNotFoundError from deeper down, if it is an extra's

The extras are pyproject.toml's [project.optional-dependencies]; MODULES lists the
top-level module each of their packages installs.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import UserError

# top-level module -> the extra that installs it
MODULES: dict[str, str] = {
    "fastapi": "serve", "uvicorn": "serve", "multipart": "serve", "python_multipart": "serve",
    "streamlit": "gui",
    "cv2": "edit",
    "onnx": "export", "onnxruntime": "export", "onnxscript": "export", "keras": "export",
    "tensorboard": "train",
}
# what `require_extra` imports to check that an extra is there
CHECKED: dict[str, tuple[str, ...]] = {"serve": ("fastapi", "uvicorn"), "gui": ("streamlit",), "edit": ("cv2",),
                                       "export": ("onnx", "onnxscript"), "train": ("tensorboard",)}
PURPOSES = {"serve": "the REST API server", "gui": "the browser GUI", "edit": "finding faces in photos (OpenCV)",
            "export": "ONNX and Keras export", "train": "TensorBoard logging"}


class MissingExtraError(UserError):
    """An optional package is not installed; the message names the extra that installs it."""


def _message(module: str, extra: str) -> str:
    return (f"{PURPOSES[extra]} needs the optional package '{module}', which is not installed. "
            f'Install it with: pip install "facevae[{extra}]"')


def require_extra(extra: str) -> None:
    """Import every module of an extra now, or raise MissingExtraError naming the pip command."""
    for module in CHECKED[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtraError(_message(module, extra)) from None


def import_optional(module: str, hint: str = "") -> ModuleType:
    """An optional extra's module, or MissingExtraError naming the pip command (plus a hint)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        message = _message(module, MODULES[module.split(".")[0]])
        raise MissingExtraError(message + (f" ({hint})" if hint else "")) from None


def missing_extra_error(error: ImportError) -> MissingExtraError | None:
    """The UserError for an ImportError of an optional extra's module; None for anything else."""
    module = (getattr(error, "name", None) or "").split(".")[0]
    extra = MODULES.get(module)
    return MissingExtraError(_message(module, extra)) if extra else None
