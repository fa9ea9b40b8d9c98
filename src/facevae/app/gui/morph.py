"""GUI mode "Morph faces": pairs of random faces blended in n steps.

Linear interpolation takes the straight line between two codes; spherical (slerp) follows
the great circle, which keeps the codes at the typical distance from the origin where the
decoder was trained, so the middle faces stay sharp.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from facevae.app.gui import common
from facevae.inference.pipeline import FacePipeline

METHODS = {"linear": "Linear", "slerp": "Spherical (slerp)"}
EXPLANATION = (
    "Each row blends one random face (left) into another (right) in equal steps through latent "
    "space. *Linear* follows the straight line between the two codes; *spherical* (slerp) keeps "
    "the in-between codes as far from the origin as real faces are, which usually looks sharper."
)


@st.cache_data(max_entries=32, show_spinner=False)
def morph_grid(_pipeline: FacePipeline, model_ref: str, pairs: int, steps: int, seed: int,
               method: str) -> tuple[bytes, np.ndarray]:
    """(PNG of the grid, latents in grid order); model_ref stands for the unhashed pipeline."""
    result = _pipeline.morph(n_pairs=pairs, steps=steps, seed=seed, method=method)
    result.column_labels = ["start", *[f"{i / (steps - 1):.2f}" for i in range(1, steps - 1)], "end"]
    return common.result_png(result, _pipeline.image_size), result.latents


@st.fragment
def _grid(pipeline: FacePipeline, model_ref: str) -> None:
    first, second, third, fourth = st.columns(4)
    pairs = first.slider("Pairs of faces", 1, 10, value=4, key="morph-pairs")
    steps = second.slider("Steps", 3, 12, value=8, key="morph-steps")
    method = third.radio("Interpolation", list(METHODS), format_func=METHODS.get, key="morph-method",
                         horizontal=True)
    with fourth:
        seed = common.seed_input("morph-seed")
    common.set_url(seed=seed)
    with common.Timer() as timer:
        png, latents = morph_grid(pipeline, model_ref, pairs, steps, seed, method)
    common.show_png(png, name=f"morph-{method}-seed{seed}",
                    caption=f"{pairs} pairs in {steps} steps, {METHODS[method].lower()} interpolation, seed {seed}",
                    latents=latents, seconds=timer.seconds)


def render(pipeline: FacePipeline, settings: common.Settings, model_ref: str) -> None:
    st.markdown(EXPLANATION)
    _grid(pipeline, model_ref)
