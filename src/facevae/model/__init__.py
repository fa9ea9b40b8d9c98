"""The network: the VAE (vae.py), its TF-'same' convolutions (tf_same.py), its inference rewrite
(fast_decoder.py) and the loss terms (losses.py)."""
