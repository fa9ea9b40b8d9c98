"""Shared pieces of the Streamlit GUI: settings, the cached model and dataset, the model
picker, grids with download buttons, attribute controls and the URL state.

Only the GUI imports this module (it needs streamlit). Everything that computes faces goes
through facevae.inference.pipeline.FacePipeline; every picture goes through facevae.imaging.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from facevae import edit_choices
from facevae.errors import UserError
from facevae.imaging import encode_png

if TYPE_CHECKING:
    from facevae.data.cache import ImageCache
    from facevae.inference.pipeline import FacePipeline, SynthesisResult

# `facevae gui` passes its options to the script through these variables.
ENV_MODEL, ENV_DATA, ENV_RUNS_DIR = "FACEVAE_GUI_MODEL", "FACEVAE_GUI_DATA", "FACEVAE_GUI_RUNS_DIR"
STRENGTH_LIMIT = 3.0  # attribute sliders run from -3 to +3
DISPLAY_FACE_SIZE = 128  # faces are enlarged (nearest neighbour) to at least this many pixels
MAX_GRID_WIDTH = 1460  # st.image resizes (bilinear) anything wider: streamlit's MAXIMUM_CONTENT_WIDTH

@dataclass(frozen=True)
class Settings:
    model: str  # registry name, bundle folder or run folder
    data: str  # prepared cache or raw image folder; "" = none
    runs_dir: str  # folder whose training runs the model picker offers; "" = none

    @classmethod
    def from_env(cls) -> "Settings":
        from facevae.hub.registry import DEFAULT_MODEL

        return cls(os.environ.get(ENV_MODEL) or DEFAULT_MODEL, os.environ.get(ENV_DATA, ""),
                   os.environ.get(ENV_RUNS_DIR, ""))


# --- cached resources (once per process, shared by every browser session) -------------

@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def load_pipeline(model_ref: str) -> "FacePipeline":
    """The pipeline for a registry name or folder; downloads a registry model on first use."""
    from facevae.inference.pipeline import FacePipeline
    from facevae.interop.loading import load

    return FacePipeline(load(model_ref, download=True))


@st.cache_resource(show_spinner="Opening the dataset (preparing it the first time)...", max_entries=2)
def load_dataset(path: str, image_size: int, crop: str, crop_size: int) -> "ImageCache":
    """The prepared cache for `--data`, built first when it is a raw image folder."""
    from facevae.config import DataConfig
    from facevae.data.prepare import ensure_cache

    return ensure_cache(path, DataConfig(path=path, crop=crop, crop_size=crop_size), image_size)


# --- model picker ---------------------------------------------------------------------

def find_runs(runs_dir: str) -> list[Path]:
    """Training runs (folders with a bundle/) and bundles directly under runs_dir."""
    from facevae.model.bundle import is_bundle

    root = Path(runs_dir).expanduser()
    if not runs_dir or not root.is_dir():
        return []
    return [p for p in sorted(root.iterdir()) if p.is_dir() and (is_bundle(p / "bundle") or is_bundle(p))]


def model_choices(settings: Settings) -> dict[str, str]:
    """Picker label -> model reference: the --model value, registry models, installed
    bundles and the runs in --runs-dir."""
    from facevae.hub import install, registry

    choices: dict[str, str] = {}
    refs: set[str] = set()

    def add(label: str, ref: str) -> None:
        if ref not in refs:
            choices[label] = ref
            refs.add(ref)

    def registry_label(name: str) -> str:
        return f"{name} ({'installed' if install.is_installed(name) else 'downloads on first use'})"

    # `facevae gui` passes an installed registry model as its folder: show it by name.
    registry_paths = {str(registry.bundle_path(name)): name for name in registry.REGISTRY}
    start = registry_paths.get(settings.model, settings.model)  # the picker's first entry
    if start in registry.REGISTRY:
        add(registry_label(start), start)
    else:
        add(f"{Path(start).name or start} (from the command line)", start)
    for name in registry.REGISTRY:
        add(registry_label(name), name)
    for name, path in install.installed_models():
        if name not in registry.REGISTRY:
            add(f"{name} (installed bundle)", str(path))
    for run in find_runs(settings.runs_dir):
        add(f"run: {run.name}", str(run))
    return choices


def pick_model(settings: Settings) -> str:
    """Sidebar model picker; returns the chosen model reference."""
    choices = model_choices(settings)
    other = "Another bundle or run folder..."
    label = st.sidebar.selectbox("Model", [*choices, other], key="model-choice",
                                 help="Registry models, installed bundles and training runs found in --runs-dir")
    if label != other:
        return choices[label]
    path = st.sidebar.text_input("Bundle or run folder", key="model-path", placeholder="runs/celeba64")
    return path.strip() or settings.model


def load_problem(error: Exception) -> str:
    """What the page says about a model that failed to load: a UserError's own message; for
    anything else (a malformed file the loader did not anticipate) its kind and first line only,
    never a traceback (the terminal that runs `facevae gui` logs it)."""
    if isinstance(error, UserError):
        return message(error)
    first_line = (str(error).strip().splitlines() or [""])[0][:200]
    return f"it is not a valid facevae bundle or training run ({type(error).__name__}: {first_line})"


def no_model_page(model_ref: str, error: Exception) -> None:
    """What to do when no model can be loaded: never a traceback."""
    st.title("facevae: no model available")
    message = f"The model '{model_ref}' could not be loaded: {load_problem(error)}"
    st.error(message.replace("\n", "  \n"))  # markdown line breaks
    st.markdown(
        """
Get a model in one of these ways, then reload this page (or pick another one in the sidebar):

1. **Download the pretrained model** (about 4 MB, needs internet once):
   `facevae download celeba64-original`
2. **Offline**: copy `decoder.keras` and `attributes_embedings.json` of the original project into a
   folder and run `facevae download celeba64-original --from FOLDER`.
3. **Train your own**: `facevae prepare CELEBA_DIR` then `facevae train --data CELEBA_DIR --out runs/celeba64`,
   and start the GUI with `facevae gui --model runs/celeba64`.
"""
    )


# --- pictures -------------------------------------------------------------------------

def display_scale(image_size: int, columns: int = 1) -> int:
    """Integer enlargement that shows each face at least DISPLAY_FACE_SIZE pixels wide, unless
    the grid would then be wider than Streamlit shows unresized (it would blur it)."""
    fits = MAX_GRID_WIDTH // max(1, columns * (image_size + 2) + 2)
    return max(1, min(math.ceil(DISPLAY_FACE_SIZE / image_size), fits))


def latents_npy(latents: np.ndarray) -> bytes:
    """The latent codes (N x latent_dim float32) as .npy bytes for download."""
    array = np.asarray(latents, dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def result_png(result: "SynthesisResult", image_size: int) -> bytes:
    """A pipeline result as an enlarged PNG grid with the result's labels and marks."""
    return encode_png(result.grid(scale=display_scale(image_size, result.columns)))


def show_png(png: bytes, *, name: str, caption: str, latents: np.ndarray | None = None,
             seconds: float | None = None, zoom: int = 1) -> None:
    """Show a grid with its caption, a PNG download and (when given) a latents download.

    zoom > 1: the browser enlarges the picture (pixelated, see gui.PIXELATED_CSS), which is
    cheaper than encoding a larger PNG on the server."""
    width = int.from_bytes(png[16:20], "big") * zoom  # the IHDR chunk's width field
    st.image(png, caption=caption, output_format="PNG", width=width if zoom > 1 else "content")
    row = st.container(horizontal=True, vertical_alignment="center")
    row.download_button("Download PNG", png, file_name=f"{name}.png", mime="image/png",
                        key=f"{name}-png", on_click="ignore")
    if latents is not None:
        row.download_button("Download latents (.npy)", latents_npy(latents), file_name=f"{name}-latents.npy",
                            mime="application/octet-stream", key=f"{name}-npy", on_click="ignore")
    if seconds is not None:
        row.caption(f"computed in {seconds * 1000:.0f} ms")


class Timer:
    """`with Timer() as t: ...; t.seconds`."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


# --- URL state ------------------------------------------------------------------------

def url_value(name: str, default: str = "") -> str:
    value = st.query_params.get(name)
    return value if isinstance(value, str) else default


def url_int(name: str, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(url_value(name, str(default))), low), high)
    except ValueError:
        return default


def parse_attributes(text: str, known: Sequence[str]) -> dict[str, float]:
    """'Smiling:1.5,Eyeglasses:-1' -> {'Smiling': 1.5, 'Eyeglasses': -1.0}; unknown names and
    unreadable numbers are dropped, strengths clipped to the slider range."""
    result: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition(":")
        if name not in known:
            continue
        try:
            strength = float(value) if value else 1.0
        except ValueError:
            continue
        if math.isfinite(strength):
            result[name] = round(min(max(strength, -STRENGTH_LIMIT), STRENGTH_LIMIT), 2)
    return result


def format_attributes(strengths: dict[str, float]) -> str:
    return ",".join(f"{name}:{value:g}" for name, value in strengths.items())


def set_url(**values: object) -> None:
    """Write settings into the URL so the view can be shared and reloaded; "" removes one."""
    for name, value in values.items():
        text = str(value)
        if not text:
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != text:
            st.query_params[name] = text


# --- shared widgets -------------------------------------------------------------------

def attribute_label(name: str) -> str:
    return name.replace("_", " ")


def seed_input(key: str) -> int:
    """The seed widget, starting from the URL's seed."""
    if key not in st.session_state:
        st.session_state[key] = url_int("seed", 0, 0, 2**31 - 1)
    return int(st.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=key,
                               help="The same seed gives the same faces"))


def attribute_checkboxes(names: Sequence[str], key: str) -> None:
    """A checkbox per attribute, in the sidebar (outside any fragment); starts from the URL."""
    if not names:
        return
    initial = parse_attributes(url_value("attrs"), names)
    st.sidebar.subheader("Attributes", help="Tick an attribute to get a strength slider for it")
    for name in names:
        box_key = f"{key}-use-{name}"
        if box_key not in st.session_state:
            st.session_state[box_key] = name in initial
        st.sidebar.checkbox(attribute_label(name), key=box_key)


def attribute_sliders(names: Sequence[str], key: str, weak: dict[str, str] | None = None) -> dict[str, float]:
    """A -3..3 strength slider per ticked attribute; returns {name: strength}. weak: {name:
    sentence} of attributes the model barely draws (inference.edit_quality), shown under their slider."""
    if not names:
        st.info("This model has no attribute vectors, so faces cannot be edited. "
                "`facevae attributes` computes them from a labelled dataset.")
        return {}
    initial = parse_attributes(url_value("attrs"), names)
    checked = [name for name in names if st.session_state.get(f"{key}-use-{name}")]
    if not checked:
        st.caption("Tick attributes in the sidebar to get a strength slider for each.")
        return {}
    strengths: dict[str, float] = {}
    columns = st.columns(3)
    for index, name in enumerate(checked):
        slider_key = f"{key}-strength-{name}"
        if slider_key not in st.session_state:
            st.session_state[slider_key] = float(initial.get(name, 1.0))
        strengths[name] = float(columns[index % 3].slider(
            f"{attribute_label(name)} strength", -STRENGTH_LIMIT, STRENGTH_LIMIT, step=0.1, key=slider_key,
            help="1 = the mean difference between faces with and without the attribute"))
        if name in (weak or {}):
            columns[index % 3].caption(f"⚠ {weak[name]}")
    return strengths


# The GUI's names for the settings library messages ask users to change (UserError.option).
CONTROL_LABELS = {"whole_image": "*Use the whole picture*", "refine_steps": "*Refinement steps*",
                  "keep": "*Keep unchanged*", "keep_mode": "*Keep mode*"}


def control_name(option: str, value: object) -> str:
    """A UserError's option as the page names it: "tick *Use the whole picture*"."""
    label = CONTROL_LABELS.get(option, option.replace("_", " "))
    return f"tick {label}" if value is True else label


def message(error: UserError) -> str:
    """A library error in the page's own words (its controls, never the CLI's flags)."""
    return error.render(control_name)


# The GUI's names for facevae.edit_choices.KEEP_MODES (every mode has one: tests/app/test_gui.py).
KEEP_MODE_LABELS = {"auto": "Automatic", "orthogonal": "Orthogonal (exact, instant)",
                    "group": "Orthogonal to the kept group", "decoded": "Corrected on decoded faces (slower)"}
KEEP_MODE_HELP = "; ".join(f"{KEEP_MODE_LABELS[mode]}: {text}" for mode, text in edit_choices.KEEP_MODES.items())


def keep_controls(names: Sequence[str], strengths: dict[str, float], key: str) -> tuple[tuple[str, ...], str]:
    """A "keep unchanged" multiselect of the attributes not being edited, and the keep mode."""
    if not strengths:
        return (), edit_choices.DEFAULT_KEEP_MODE
    options = [n for n in names if n not in strengths]
    if f"{key}-keep" in st.session_state:  # an attribute kept earlier may be the one edited now
        st.session_state[f"{key}-keep"] = [n for n in st.session_state[f"{key}-keep"] if n in options]
    left, right = st.columns([3, 1])
    kept = left.multiselect("Keep unchanged", options, key=f"{key}-keep",
                            format_func=attribute_label,
                            help="The edits are made orthogonal to these attributes' directions, so they "
                                 "change them as little as possible (docs/usage.md, Conditional edits)")
    mode = right.selectbox("Keep mode", list(edit_choices.KEEP_MODES), format_func=KEEP_MODE_LABELS.get,
                           key=f"{key}-keep-mode", disabled=not kept,
                           help=KEEP_MODE_HELP + " (docs/usage.md, Conditional edits)")
    return tuple(kept), mode


EDIT_METHODS = {"linear": "Linear (instant)", "guided": "Guided by the classifier (seconds per face)"}


def method_control(strengths: dict[str, float], keep: tuple[str, ...], key: str,
                   default: str = "linear") -> tuple[str, tuple[str, ...]]:
    """(edit method, keep): linear or guided (facevae.inference.guided), and with guided a
    "keep everything else" box that keeps every attribute the classifier knows."""
    if not strengths:
        return "linear", keep
    left, right = st.columns([3, 1])
    method = left.radio("Edit method", list(EDIT_METHODS), format_func=EDIT_METHODS.get, horizontal=True,
                        index=list(EDIT_METHODS).index(default), key=f"{key}-method",
                        help="Guided walks each face along the shipped attribute classifier's gradient and holds "
                             "the kept attributes where they were: edits change less of what you did not ask for "
                             "(docs/usage.md, Guided edits)")
    everything = right.checkbox("Keep everything else", key=f"{key}-keep-all", disabled=method != "guided",
                                help="Guided only: hold every other attribute the classifier knows, loosely "
                                     "(the edit comes out about half as strong; a few seconds per face)")
    return method, ("*",) if method == "guided" and everything else keep
