"""facevae: controllable face generation with a variational autoencoder.

    import facevae
    model = facevae.load("celeba64-original")      # or a bundle / training-run folder
    images = model.decode(torch.randn(8, model.latent_dim))
"""

__version__ = "0.1.0"

from .loading import load  # noqa: E402  (needs __version__ defined first)

__all__ = ["load", "__version__"]
