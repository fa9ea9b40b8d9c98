"""GUI mode "Generate faces": random latent codes, decoded, with attribute sliders.

The seed fixes the faces, so moving a slider shows that attribute's effect on the same
faces. Decoded grids are cached per (model, seed, count, strengths): going back to a slider
position is instant.
"""

from __future__ import annotations

import random

import numpy as np
import streamlit as st

from facevae.app.gui import common
from facevae.imaging import encode_png
from facevae.inference.edit_quality import weak_attributes
from facevae.inference.pipeline import FacePipeline

COLUMNS = 10  # the original showed 70 faces in 7 rows of 10
EXPLANATION = (
    "Random latent codes are drawn from a standard normal distribution and decoded into faces. "
    "Tick an attribute in the sidebar and move its slider to add (or subtract) that attribute's direction in "
    "latent space: the same faces change, so you can see what the attribute does."
)


@st.cache_data(max_entries=64, show_spinner=False)
def generated_grid(_pipeline: FacePipeline, model_ref: str, count: int, seed: int,
                   strengths: tuple[tuple[str, float], ...], keep: tuple[str, ...] = (),
                   keep_mode: str = "auto", method: str = "linear") -> tuple[bytes, np.ndarray]:
    """(PNG of the grid at the model's resolution, N x latent_dim latents); model_ref stands
    for the unhashed pipeline. The browser enlarges the unlabelled grid (see show_png)."""
    result = _pipeline.generate(count, seed=seed, attributes=dict(strengths), columns=COLUMNS, keep=keep,
                                keep_mode=keep_mode, method=method)
    return encode_png(result.grid()), result.latents


def _new_faces() -> None:
    st.session_state["generate-seed"] = random.randrange(2**31 - 1)


@st.fragment
def _grid(pipeline: FacePipeline, model_ref: str) -> None:
    names = pipeline.attribute_names
    count_column, seed_column, button_column = st.columns([2, 1, 1], vertical_alignment="bottom")
    count = count_column.slider("Number of faces", 1, 100, key="generate-count",
                                value=common.url_int("faces", 70, 1, 100))
    with seed_column:
        seed = common.seed_input("generate-seed")
    button_column.button("New faces", on_click=_new_faces, key="generate-new", help="Draw new random faces")
    strengths = common.attribute_sliders(names, "generate", weak_attributes(pipeline.model))
    keep, keep_mode = common.keep_controls(names, strengths, "generate")
    method, keep = common.method_control(strengths, keep, "generate")
    common.set_url(seed=seed, faces=count if count != 70 else "", attrs=common.format_attributes(strengths))
    with common.Timer() as timer:
        png, latents = generated_grid(pipeline, model_ref, count, seed, tuple(strengths.items()), keep, keep_mode,
                                      method)
    edited = ", ".join(f"{common.attribute_label(n)} {v:+g}" for n, v in strengths.items()) or "no attributes"
    common.show_png(png, name=f"generated-seed{seed}", caption=f"{count} faces, seed {seed}, {edited}",
                    latents=latents, seconds=timer.seconds,
                    zoom=common.display_scale(pipeline.image_size, min(count, COLUMNS)))


def render(pipeline: FacePipeline, settings: common.Settings, model_ref: str) -> None:
    st.markdown(EXPLANATION)
    common.attribute_checkboxes(pipeline.attribute_names, "generate")
    _grid(pipeline, model_ref)
