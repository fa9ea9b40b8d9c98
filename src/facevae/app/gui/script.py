"""The facevae GUI, a Streamlit script: `facevae gui` (or `streamlit run` on this file).

Streamlit reruns this script on every interaction. The model is loaded once per process
(st.cache_resource in common.py) and each mode draws its grid in an st.fragment, so moving
a slider recomputes only that grid. The mode, seed and attributes live in the URL.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from facevae.app.gui import arithmetic, attributes, common, edit, generate, morph, reconstruct
from facevae.errors import UserError

log = logging.getLogger("facevae.gui")
# URL slug -> (menu label, module with render(pipeline, settings, model_ref)).
MODES = {
    "generate": ("Generate faces", generate),
    "reconstruct": ("Reconstruct faces", reconstruct),
    "arithmetic": ("Latent arithmetic", arithmetic),
    "morph": ("Morph faces", morph),
    "edit": ("Edit your photo", edit),
    "attributes": ("Attribute similarities", attributes),
}
# Faces are small: enlarge them without blurring, in the page and in full-screen view, and
# never wider than the page (a grid enlarged by show_png's zoom shrinks back to fit).
PIXELATED_CSS = ("<style>img { image-rendering: pixelated; } "
                 "[data-testid='stImageContainer'] { max-width: 100%; }</style>")


def main() -> None:
    st.set_page_config(page_title="facevae", page_icon=":performing_arts:", layout="wide")
    st.html(PIXELATED_CSS)
    settings = common.Settings.from_env()
    st.sidebar.title("facevae")
    model_ref = common.pick_model(settings)
    try:
        pipeline = common.load_pipeline(model_ref)
    except Exception as error:  # a malformed bundle can fail in any way: explain it, never a traceback
        if not isinstance(error, UserError):
            log.exception("loading the model %s failed", model_ref)
        common.no_model_page(model_ref, error)
        return
    slugs = list(MODES)
    if "mode" not in st.session_state:
        requested = common.url_value("mode", "generate")
        st.session_state["mode"] = requested if requested in MODES else "generate"
    slug = st.sidebar.radio("Mode", slugs, key="mode", format_func=lambda s: MODES[s][0])
    common.set_url(mode=slug)
    model = pipeline.model
    name = model.path.name if model.path is not None and model.path.name != "bundle" else Path(model_ref).name
    st.sidebar.caption(
        f"Model: {name}  \n{model.config.image_size}x{model.config.image_size}, latent size "
        f"{model.latent_dim}, {len(model.attributes)} attributes, "
        f"{'with' if model.has_encoder else 'no'} encoder"
    )
    label, module = MODES[slug]
    st.title(label)
    module.render(pipeline, settings, model_ref)


main()
