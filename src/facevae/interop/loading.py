"""Turn what a user typed after `--model` into a loaded FaceModel.

Accepted: a bundle folder, a training run folder (its `bundle/`), or the name of a
registered pretrained model (downloaded and converted on first use). This sits above hub/:
converting a registry model published as .keras files needs interop's Keras reader, which
hub's installer takes as its `convert` (convert_published).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..hub.registry import DEFAULT_MODEL, PretrainedModel
from ..model.bundle import BUNDLE_FORMAT, BundleError, FaceModel, is_bundle, load_bundle


def convert_published(spec: PretrainedModel, files: dict[str, Path], provenance: dict) -> FaceModel:
    """A registry model's verified files -> the model (hub.install.Converter): .keras files
    through facevae.interop.keras, published bundles as hub reads them."""
    from ..hub.install import published_bundle
    from .keras import import_keras

    if spec.format == "bundle":
        return published_bundle(spec, files, provenance)
    return import_keras(files["decoder"], files.get("encoder"), files.get("attributes"), provenance=provenance)


def resolve_model_path(name_or_path: str | Path, download: bool = True) -> Path:
    """The bundle folder for a bundle path, a run folder or a registry name."""
    path = Path(name_or_path).expanduser()
    if is_bundle(path):
        return path
    if is_bundle(path / "bundle"):
        return path / "bundle"
    if (path / "config.json").is_file():
        raise BundleError(f"{path}/config.json is not a facevae bundle's config (a JSON object with format "
                          f"'{BUNDLE_FORMAT}'); restore the file from where the bundle came from, or save it again")
    if path.exists():
        raise BundleError(
            f"{path} is neither a bundle (a folder with config.json and decoder.safetensors) nor a "
            f"training run with a bundle/ folder. A run gets its bundle when training ends; "
            f"`facevae bundle RUN_DIR` makes one from its best checkpoint"
        )
    from ..hub import install, registry  # the installer pulls in download code only when needed

    name = str(name_or_path)
    if name in registry.REGISTRY:
        return install.ensure_installed(name, download=download, convert=convert_published)
    raise BundleError(
        f"'{name}' is not a path and not a registered model. Registered models: "
        f"{', '.join(registry.REGISTRY)}; or give the path of a bundle or training run"
    )


def load(name_or_path: str | Path = DEFAULT_MODEL, device: str | torch.device = "cpu",
         download: bool = True) -> FaceModel:
    """Load a model for inference: `facevae.load("celeba64-original")`."""
    return load_bundle(resolve_model_path(name_or_path, download=download), device=device)
