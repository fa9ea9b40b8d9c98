"""facevae: controllable face generation with a variational autoencoder.

    import facevae
    model = facevae.load("celeba64-original")      # or a bundle / training-run folder
    pipe = facevae.FacePipeline(model)             # generate / edit / morph, as PNG grids
    images = pipe.decode_tensor(torch.randn(8, model.latent_dim))

The public names below stay importable from here whatever moves inside the package. They are
imported on first use, so `import facevae` (and the CLI's `--help`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    "load": "facevae.interop.loading",
    "DEFAULT_MODEL": "facevae.hub.registry",
    "FacePipeline": "facevae.inference.pipeline",
    "SynthesisResult": "facevae.inference.pipeline",
    "EncodedPhoto": "facevae.inference.encoded",
    "align_face": "facevae.inference.face",
    "ModelConfig": "facevae.config",
    "DataConfig": "facevae.config",
    "TrainConfig": "facevae.config",
    "RunConfig": "facevae.config",
    "UserError": "facevae.errors",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'facevae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
