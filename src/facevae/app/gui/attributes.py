"""GUI mode "Attribute similarities": the cosine between every pair of attribute vectors, and the
discovered directions (SeFa) of any model, labelled or not.

Attributes whose vectors point the same way move together when you edit: adding
"Eyeglasses" may also add age or change gender. facevae.evaluation.similarity computes the matrix and
draws the heatmap; this page only shows them.
"""

from __future__ import annotations

import streamlit as st

from facevae.app.gui import common
from facevae.imaging import encode_png
from facevae.inference.pipeline import FacePipeline

HEATMAP_CELL = 20  # pixels per cell: 40 attributes make an 800-pixel square
EXPLANATION = (
    "Each cell is the cosine similarity between two attribute directions in latent space: red cells "
    "(near +1) mark attributes that move together, blue cells (near -1) opposites. Strongly related "
    "attributes are entangled: editing one changes the other as well."
)

DISCOVERED_EXPLANATION = (
    "Directions found without labels, from the decoder's weights alone (closed-form factorisation, SeFa): "
    "the moves in latent space that change the decoder's first layer most. Each row moves the same face "
    "along one of them; strength 1 is one standard deviation of the prior."
)
DISCOVERED_HELP = "Name and store them with `facevae directions --name 0=Pose --store`; then they work like sliders."


@st.cache_data(max_entries=4, show_spinner=False)
def heatmap(_pipeline: FacePipeline, model_ref: str) -> tuple[bytes, list[tuple[str, str, float]]]:
    """(heatmap PNG, the most similar pairs)."""
    from facevae.evaluation import similarity

    names = _pipeline.attribute_names
    matrix = similarity.cosine_matrix(_pipeline.model.attributes)
    png = encode_png(similarity.heatmap(names, matrix, cell=HEATMAP_CELL))
    pairs = [(names[i], names[j], float(matrix[i, j])) for i in range(len(names)) for j in range(i + 1, len(names))]
    pairs.sort(key=lambda pair: -abs(pair[2]))
    return png, pairs


@st.cache_data(max_entries=4, show_spinner="Finding directions...")
def discovered_grid(_pipeline: FacePipeline, model_ref: str, count: int, seed: int) -> bytes:
    """PNG: one row per discovered (SeFa) direction, the same face from -3 to +3."""
    from facevae.inference.discovered import direction_grid, direction_names, sefa_directions

    directions, _ = sefa_directions(_pipeline.model.decoder, count)
    return encode_png(direction_grid(_pipeline, directions, direction_names(count, {}), seed=seed).grid(scale=2))


def discovered_section(pipeline: FacePipeline, model_ref: str) -> None:
    st.subheader("Discovered directions", help=DISCOVERED_HELP)
    st.markdown(DISCOVERED_EXPLANATION)
    count_column, seed_column = st.columns(2)
    count = count_column.slider("Directions", 1, 12, value=6, key="discovered-count")
    with seed_column:
        seed = common.seed_input("discovered-seed")
    png = discovered_grid(pipeline, model_ref, count, seed)
    st.image(png, output_format="PNG", caption="Rows: discovered directions, largest first; columns: strength")
    st.download_button("Download PNG", png, file_name="discovered-directions.png", mime="image/png",
                       key="discovered-png", on_click="ignore")


def render(pipeline: FacePipeline, settings: common.Settings, model_ref: str) -> None:
    st.markdown(EXPLANATION)
    if len(pipeline.attribute_names) < 2:
        st.warning("This model has fewer than two attribute vectors, so there is nothing to compare.")
        discovered_section(pipeline, model_ref)
        return
    png, pairs = heatmap(pipeline, model_ref)
    st.image(png, output_format="PNG",
             caption=f"Cosine similarity between the {len(pipeline.attribute_names)} attribute vectors")
    st.download_button("Download PNG", png, file_name="attribute-similarities.png", mime="image/png",
                       key="attributes-png", on_click="ignore")
    st.subheader("Most related pairs")
    st.table({"attribute": [common.attribute_label(a) for a, _, _ in pairs[:10]],
              "and": [common.attribute_label(b) for _, b, _ in pairs[:10]],
              "cosine": [f"{c:+.2f}" for _, _, c in pairs[:10]]})
    discovered_section(pipeline, model_ref)
