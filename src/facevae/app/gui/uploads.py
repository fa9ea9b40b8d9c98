"""Uploaded photos for the GUI: read safely, find and frame the face, encode once.

Every failure (not an image, too large, no face found) becomes a message naming the file,
never an exception in the page. Encoding is cached per photo, so moving an attribute slider
afterwards only decodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st
from PIL import Image

from facevae.app.gui import common
from facevae.errors import UserError
from facevae.inference.encoded import EncodedPhoto
from facevae.inference.pipeline import FacePipeline

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif"]


@dataclass
class PreparedPhoto:
    name: str
    image: Image.Image  # framed like CelebA's aligned images, before resizing to the model
    notes: list[str] = field(default_factory=list)


def prepare_photo(name: str, data: bytes, whole_image: bool) -> PreparedPhoto:
    """Read an uploaded photo and frame its face; raises UserError with a clear message."""
    from facevae.imaging import read_image
    from facevae.inference.face import align_face

    try:
        picture = read_image(data)
        aligned = align_face(picture, whole_image=whole_image)
    except UserError as error:
        raise UserError(f"{name}: {error.message}", error.option, error.value) from None
    return PreparedPhoto(name, aligned.image, list(aligned.notes))


def prepare_uploads(files: list, whole_image: bool) -> list[PreparedPhoto]:
    """The uploads that could be used; an st.error for each one that could not."""
    photos = []
    for file in files:
        try:
            photos.append(prepare_photo(file.name, file.getvalue(), whole_image))
        except UserError as error:
            st.error(common.message(error))
    return photos


# Few entries: each holds a decoder tuned to its photo (megabytes); a new photo or model soon drops old ones.
@st.cache_resource(max_entries=4, show_spinner=False)
def encode_framed_photo(_pipeline: FacePipeline, model_ref: str, key: tuple[str, ...], _framed: Image.Image,
                        refine_steps: int, tune_steps: int | None = None) -> EncodedPhoto:
    """A photo already framed by prepare_photo, encoded (and its decoder copy tuned) by
    FacePipeline.encode as `facevae edit` does; `key` stands for the photo (a per-upload id, so
    no other session reaches it). Kept as is (never copied): edits only read it."""
    return _pipeline.encode(_framed, refine_steps, whole_image=True, tune_steps=tune_steps)


def tune_control(key: str) -> int | None:
    """Whether photos get a decoder copy tuned to them: None (the library's default steps) or 0."""
    tuned = st.checkbox("Tune the decoder to the photo", value=True, key=key,
                        help="A copy of the decoder is fine-tuned for about a second so that it draws this "
                             "person; an edit redraws the face where it acts (a strong edit, much of it). Untick "
                             "for the faster look-alike.")
    return None if tuned else 0


def refine_steps_control(pipeline: FacePipeline, key: str, images: int) -> int:
    """Optimisation steps: optional with an encoder, required (and explained) without one."""
    if pipeline.model.has_encoder:
        return int(st.slider("Refinement steps (optional optimisation after the encoder)", 0, 300, value=0,
                             step=10, key=key, help="0 = the encoder's answer; more steps fit the photo more "
                                                    "closely but take longer"))
    from facevae.inference.inversion import DECODER_ONLY_STEPS

    st.warning(
        "This model has no encoder, so faces are encoded by **optimisation**: the latent code is adjusted "
        "step by step until the decoder redraws the face (docs/benchmarks.md has the time per photo). "
        "A bundle with an encoder (a facevae training run, or `facevae import-keras` with encoder.keras) "
        "encodes instantly."
    )
    steps = st.slider("Optimisation steps", DECODER_ONLY_STEPS, 500, value=DECODER_ONLY_STEPS, step=20, key=key,
                      help=f"More steps fit {'the photos' if images > 1 else 'the photo'} more closely")
    return int(steps)
