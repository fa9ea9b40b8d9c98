"""GUI mode "Edit your photo": upload, see the framed face, move attribute sliders,
compare before and after, download the result.

The photo is encoded once (cached); each slider move only decodes two faces.
"""

from __future__ import annotations

import streamlit as st

from facevae.app.gui import common, uploads
from facevae.errors import UserError
from facevae.imaging import encode_png, make_grid
from facevae.inference.encoded import EncodedPhoto
from facevae.inference.pipeline import FacePipeline

EDIT_FACE_SIZE = 192  # pixels per face in the before/after row
EXPLANATION = (
    "Upload a photo with one face. The face is found and framed the way the training images were, "
    "encoded into a latent code, and redrawn with the attributes you choose. The first picture is your "
    "framed photo, the second what the model redraws from its code (the starting point of every edit), "
    "the third the edited face."
)


@st.fragment
def _editor(pipeline: FacePipeline, photo: EncodedPhoto) -> None:
    """[photo, reconstruction, edited] from FacePipeline.edit on the cached encoding: a slider move only decodes."""
    strengths = common.attribute_sliders(pipeline.attribute_names, "edit")
    keep, keep_mode = common.keep_controls(pipeline.attribute_names, strengths, "edit")
    common.set_url(attrs=common.format_attributes(strengths))
    with common.Timer() as timer:
        try:
            result = pipeline.edit(photo, strengths, keep=keep, keep_mode=keep_mode)
        except UserError as error:
            st.error(common.message(error))
            return
        scale = max(common.display_scale(pipeline.image_size, 3), EDIT_FACE_SIZE // pipeline.image_size)
        png = encode_png(make_grid(result.images, 3, scale=scale,
                                   column_labels=["your photo", "reconstruction", "edited"]))
    common.show_png(png, name="edit-before-after", caption="Before and after", latents=result.latents[1:],
                    seconds=timer.seconds)
    st.download_button("Download the edited face (PNG)", encode_png(make_grid(result.faces[1:], 1, scale=scale)),
                       file_name="edited-face.png", mime="image/png", key="edit-result-png", on_click="ignore")


def render(pipeline: FacePipeline, settings: common.Settings, model_ref: str) -> None:
    st.markdown(EXPLANATION)
    if not pipeline.attribute_names:
        st.warning("This model has no attribute vectors, so only the reconstruction can be shown. "
                   "`facevae attributes --model MODEL --data CELEBA` computes them.")
    common.attribute_checkboxes(pipeline.attribute_names, "edit")
    photo_column, edit_column = st.columns([1, 2], gap="large")
    with photo_column:
        file = st.file_uploader("Your photo", type=uploads.UPLOAD_TYPES, key="edit-upload")
        whole = st.checkbox("Use the whole picture (no face detection)", key="edit-whole",
                            help="For pictures already framed like CelebA: face centred, eyes level")
        if file is None:
            st.info("Upload a photo (PNG, JPEG, WebP, BMP or GIF) with one face, seen from the front.")
            return
        try:
            photo = uploads.prepare_photo(file.name, file.getvalue(), whole)
        except UserError as error:
            st.error(common.message(error))
            if not whole:
                st.caption("If the picture is already a cropped face, tick *Use the whole picture*.")
            return
        st.image(photo.image, caption="The face as the model sees it (framed like CelebA)", width=178,
                 output_format="PNG")
        for note in photo.notes:
            st.caption(note)
        steps = uploads.refine_steps_control(pipeline, "edit-steps", 1)
    with edit_column:
        with st.spinner("Encoding your photo..."):
            try:
                encoded = uploads.encode_framed_photo(pipeline, model_ref, (file.file_id, whole), photo.image, steps)
            except UserError as error:
                st.error(common.message(error))
                return
        _editor(pipeline, encoded)
