"""GUI mode "Reconstruct faces": originals above what the model redraws from their codes.

Sources: the validation split of `--data` (faces the model did not train on), uploaded
photos (face found and framed like CelebA), or freshly generated faces (how well the
encoder inverts the decoder). A model without an encoder reconstructs by optimisation.
"""

from __future__ import annotations

import random

import numpy as np
import streamlit as st

from facevae.app.gui import common, uploads
from facevae.errors import UserError
from facevae.imaging import to_tensor
from facevae.inference.pipeline import FacePipeline

SOURCES = {"validation": "Validation images (--data)", "upload": "Your photos", "generated": "Generated faces"}
COLUMNS = 10
MAX_UPLOADS = 20
EXPLANATION = (
    "Faces are encoded into latent codes and decoded again: each original is shown above its "
    "reconstruction. Reconstructions are smoother than the originals: the model keeps what faces "
    "have in common (pose, colouring, expression) and loses fine detail."
)


@st.cache_data(max_entries=16, show_spinner=False)
def validation_faces(_pipeline: FacePipeline, model_ref: str, data: str, count: int, seed: int) -> np.ndarray:
    """count random faces (N x S x S x 3 uint8) from the dataset's validation split."""
    config, pre = _pipeline.model.config, _pipeline.model.preprocessing
    cache = common.load_dataset(data, config.image_size, pre.crop, pre.crop_size)
    rows = cache.split_indices("valid")
    if len(rows) == 0:
        raise UserError(f"{data} has no validation images; prepare it with a validation fraction above 0")
    picked = np.sort(np.random.default_rng(seed).choice(rows, size=min(count, len(rows)), replace=False))
    return np.asarray(cache.images[picked])


@st.cache_data(max_entries=16, show_spinner=False)
def reconstruction_grid(_pipeline: FacePipeline, model_ref: str, key: tuple, _images: object,
                        refine_steps: int) -> tuple[bytes, np.ndarray]:
    """(PNG, latents) for images (N x 3 x S x S, or photos framed by uploads.prepare_photo); `key`
    identifies the images for the cache."""
    result = _pipeline.reconstruct(_images, refine_steps=refine_steps, columns=COLUMNS, whole_image=True)
    return common.result_png(result, _pipeline.image_size), result.latents


def _new_faces() -> None:
    st.session_state["reconstruct-seed"] = random.randrange(2**31 - 1)


def _source_images(pipeline: FacePipeline, model_ref: str, source: str, settings: common.Settings
                   ) -> tuple[tuple, object] | None:
    """(cache key, N x 3 x S x S images) for the chosen source, or None with a message shown."""
    if source == "upload":
        whole = st.checkbox("Use the whole picture (no face detection)", key="reconstruct-whole",
                            help="For pictures already framed like CelebA: face centred, eyes at the same height")
        files = st.file_uploader("Photos with one face each", type=uploads.UPLOAD_TYPES, accept_multiple_files=True,
                                 key="reconstruct-upload")
        if not files:
            st.info("Upload one or more photos (PNG, JPEG, WebP, BMP or GIF) with a face in each.")
            return None
        if len(files) > MAX_UPLOADS:
            st.warning(f"Using the first {MAX_UPLOADS} of {len(files)} photos.")
            files = files[:MAX_UPLOADS]
        photos = uploads.prepare_uploads(files, whole)
        if not photos:
            return None
        return ("upload", whole, *(f.file_id for f in files)), [p.image for p in photos]
    left, right = st.columns(2)
    count = left.slider("Number of faces", 1, 40, value=20 if pipeline.model.has_encoder else 4,
                        key="reconstruct-count")
    with right:
        seed = common.seed_input("reconstruct-seed")
        st.button("New faces", on_click=_new_faces, key="reconstruct-new")
    common.set_url(seed=seed)
    if source == "generated":
        images = pipeline.decode_tensor(pipeline.sample_latents(count, seed))
        return ("generated", count, seed), images
    faces = validation_faces(pipeline, model_ref, settings.data, count, seed)
    return ("validation", settings.data, count, seed), to_tensor(faces)


@st.fragment
def _grid(pipeline: FacePipeline, model_ref: str, settings: common.Settings) -> None:
    sources = [s for s in SOURCES if s != "validation" or settings.data]
    source = st.radio("Faces to reconstruct", sources, format_func=SOURCES.get, horizontal=True,
                      key="reconstruct-source")
    if not settings.data:
        st.caption("Start the GUI with `--data CELEBA_OR_CACHE` to reconstruct faces from the validation split.")
    try:
        picked = _source_images(pipeline, model_ref, source, settings)
    except UserError as error:
        st.error(common.message(error))
        return
    if picked is None:
        return
    key, images = picked
    steps = uploads.refine_steps_control(pipeline, "reconstruct-steps", len(images))
    with common.Timer() as timer, st.spinner("Encoding and decoding..."):
        try:
            png, latents = reconstruction_grid(pipeline, model_ref, key, images, steps)
        except UserError as error:
            st.error(common.message(error))
            return
    common.show_png(png, name=f"reconstruct-{source}", caption="Originals (upper rows) and reconstructions "
                    "(lower rows)", latents=latents, seconds=timer.seconds)


def render(pipeline: FacePipeline, settings: common.Settings, model_ref: str) -> None:
    st.markdown(EXPLANATION)
    _grid(pipeline, model_ref, settings)
