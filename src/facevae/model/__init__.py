"""The network: the VAE (vae.py), its inference rewrite (fast_decoder.py) and the loss terms (losses.py)."""
