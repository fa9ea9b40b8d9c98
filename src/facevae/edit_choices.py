"""The choices an attribute edit offers, defined once without torch: the CLI, the GUI, the REST
API and facevae.inference.directions all import them from here.

- KEEP_MODES: how edits keep other attributes unchanged, each with its help text
  (facevae.inference.directions has the mathematics).
- GROUP_COSINE: the |cosine| that puts an attribute in a kept attribute's correlated group.
- DEFAULT_STRENGTHS: the columns of latent arithmetic; strength_label writes one above a column.
"""

from __future__ import annotations

from collections.abc import Iterable

GROUP_COSINE = 0.8  # the correlated group of a kept attribute: |cosine| at or above this
DEFAULT_KEEP_MODE = "auto"
KEEP_MODES = {  # mode -> what it does, in words every front end can show
    "auto": "group where the edit survives it, else orthogonal",
    "orthogonal": "edits made orthogonal to the kept vectors (exact, instant)",
    "group": f"also orthogonal to vectors within cosine {GROUP_COSINE:g} of a kept one",
    "decoded": "orthogonal plus a correction that keeps the kept attributes' look in decoded faces (slower)",
}
# "decoded" decodes about 200 faces per request, so the REST API offers the others only.
SERVER_KEEP_MODES = ("auto", "orthogonal", "group")

DEFAULT_STRENGTHS = (-3, -2, -1, 0, 1, 2, 3)


def keep_mode_help(modes: Iterable[str] = KEEP_MODES) -> str:
    """"auto (default): ...; orthogonal: ...": the modes offered and what each does."""
    return "; ".join(f"{mode}{' (default)' if mode == DEFAULT_KEEP_MODE else ''}: {KEEP_MODES[mode]}"
                     for mode in modes)


def strength_label(strength: float) -> str:
    """The label above a strength's column: "-3", "0", "+1.5"."""
    return f"{float(strength):+g}" if strength else "0"
