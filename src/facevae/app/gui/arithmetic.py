"""GUI mode "Latent arithmetic": the same faces with one attribute from -3 to +3.

Each row is one face; each column adds the attribute vector times the strength above it.
The middle column (strength 0) is the unmodified face, framed in red.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from facevae.app.gui import common
from facevae.edit_choices import DEFAULT_STRENGTHS, strength_label
from facevae.inference.pipeline import FacePipeline

STRENGTHS = DEFAULT_STRENGTHS
EXPLANATION = (
    "Latent arithmetic: each row is one random face; each column adds the chosen attribute's "
    "vector times the strength written above it. The red-framed middle column (0) is the face "
    "as generated, so you can see the attribute being removed to the left and added to the right."
)


@st.cache_data(max_entries=32, show_spinner=False)
def arithmetic_grid(_pipeline: FacePipeline, model_ref: str, attribute: str, rows: int, seed: int,
                    keep: tuple[str, ...] = (), keep_mode: str = "auto") -> tuple[bytes, np.ndarray]:
    """(PNG of the grid, latents in grid order); model_ref stands for the unhashed pipeline."""
    result = _pipeline.arithmetic(attribute, n=rows, seed=seed, strengths=STRENGTHS, keep=keep, keep_mode=keep_mode)
    result.column_labels = [strength_label(s) if s else "0 (original)" for s in STRENGTHS]
    return common.result_png(result, _pipeline.image_size), result.latents


@st.fragment
def _grid(pipeline: FacePipeline, model_ref: str) -> None:
    names = pipeline.attribute_names
    wanted = common.url_value("attr")
    if "arithmetic-attribute" not in st.session_state:
        st.session_state["arithmetic-attribute"] = (wanted if wanted in names else
                                                    "Smiling" if "Smiling" in names else names[0])
    left, middle, right = st.columns(3)
    attribute = left.selectbox("Attribute", names, key="arithmetic-attribute", format_func=common.attribute_label)
    rows = middle.slider("Number of faces", 1, 12, value=5, key="arithmetic-rows")
    with right:
        seed = common.seed_input("arithmetic-seed")
    keep, keep_mode = common.keep_controls(names, {attribute: 1.0}, "arithmetic")
    common.set_url(seed=seed, attr=attribute)
    with common.Timer() as timer:
        png, latents = arithmetic_grid(pipeline, model_ref, attribute, rows, seed, keep, keep_mode)
    common.show_png(png, name=f"arithmetic-{attribute}-seed{seed}",
                    caption=f"{common.attribute_label(attribute)} from {strength_label(STRENGTHS[0])} to "
                            f"{strength_label(STRENGTHS[-1])}; seed {seed}",
                    latents=latents, seconds=timer.seconds)


def render(pipeline: FacePipeline, settings: common.Settings, model_ref: str) -> None:
    st.markdown(EXPLANATION)
    if not pipeline.attribute_names:
        st.warning("This model has no attribute vectors. `facevae attributes --model MODEL --data CELEBA` "
                   "computes them from a labelled dataset.")
        return
    _grid(pipeline, model_ref)
