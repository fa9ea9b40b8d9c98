"""Installing a registry model: gather its files, convert them into a bundle, write it atomically.

    FACEVAE_HOME/                       default: the user's cache folder + /facevae
      downloads/NAME/PATH               verified source files (PATH as in the source repo)
      downloads/NAME/PATH.part          an interrupted download, resumed by the next try
      models/NAME/                      the converted bundle (what `facevae.load(NAME)` opens)

A bundle folder exists only when the whole conversion succeeded. Models published as bundles
are read here; other formats (the original's .keras files) are converted by a `Converter` the
caller passes, facevae.interop.loading.convert_published, so hub never imports interop.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomic import sweep_stale_staging
from ..files import parse_json
from ..model.bundle import FaceModel, is_bundle, load_bundle, save_bundle
from .download import file_digests, gather_local, gather_remote, offline_instructions
from .registry import PretrainedError, PretrainedModel, base_url_for, bundle_path, download_dir, facevae_home, get

BUNDLE_FILES = {"config": "config.json", "decoder": "decoder.safetensors", "encoder": "encoder.safetensors",
                "attributes": "attributes.safetensors"}


# A registry model's verified files (by role) and provenance -> the model they hold.
Converter = Callable[[PretrainedModel, dict[str, Path], dict[str, Any]], FaceModel]


def published_bundle(spec: PretrainedModel, files: dict[str, Path], provenance: dict) -> FaceModel:
    """A bundle published as files: checked by loading it like any bundle."""
    if spec.format != "bundle":
        raise PretrainedError(f"'{spec.name}' is published as {spec.format} files, which this converter cannot "
                              f"read; install it with `facevae download {spec.name}` or facevae.load")
    with tempfile.TemporaryDirectory() as tmp:
        for role, path in files.items():
            shutil.copyfile(path, Path(tmp) / BUNDLE_FILES[role])
        try:
            meta = parse_json((Path(tmp) / "config.json").read_text())
        except ValueError:
            meta = None
        if isinstance(meta, dict):  # anything else: load_bundle below says what is wrong
            meta["has_encoder"] = "encoder" in files  # the encoder may be optional in the registry
            (Path(tmp) / "config.json").write_text(json.dumps(meta))
        model = load_bundle(tmp)
    model.provenance = {**model.provenance, **provenance}
    return model


def _convert(spec: PretrainedModel, files: dict[str, Path], origins: dict[str, str], convert: Converter) -> Path:
    provenance = {
        "source": f"pretrained registry: {spec.name}",
        "registry_name": spec.name,
        "description": spec.description,
        "licence": spec.licence,
        "author": spec.author,
        "copyright": spec.copyright,
        "homepage": spec.source,
        "commit": spec.commit,
        "files": {f.path: {"from": origins[f.role], "sha256": f.sha256 or file_digests(files[f.role])[0],
                           "git_blob": f.git_blob} for f in spec.files if f.role in files},
    }
    return save_bundle(convert(spec, files, provenance), bundle_path(spec.name))


def is_installed(name: str) -> bool:
    return is_bundle(bundle_path(name))


def install(name: str, source_dir: str | Path | None = None, base_url: str | None = None,
            progress: bool = True, force: bool = False, convert: Converter = published_bundle) -> Path:
    """Install a registry model into FACEVAE_HOME and return its bundle folder.

    source_dir: a folder with the files (flat or at the source's relative paths), for
    offline use; otherwise they are downloaded from base_url (default: FACEVAE_BASE_URL,
    else the registry's URL). An installed model is returned as is unless force=True.
    convert: turns the files into a model; the default reads models published as bundles,
    facevae.interop.loading.convert_published reads every registry format.
    """
    spec = get(name)
    target = bundle_path(name)
    sweep_stale_staging(target.parent)  # what killed installs of any model left behind
    if is_bundle(target) and not force:
        return target
    if source_dir is not None:
        files = gather_local(spec, Path(source_dir))
        origins = {role: str(path) for role, path in files.items()}
        notes = [f"{source_dir} has no {f.filename}; installed without it"
                 for f in spec.files if not f.required and f.role not in files]
    else:
        url = base_url_for(spec, base_url)
        if force:
            shutil.rmtree(download_dir(name), ignore_errors=True)
        files, notes = gather_remote(spec, url, progress)
        origins = {f.role: url + f.path for f in spec.files if f.role in files}
    path = _convert(spec, files, origins, convert)
    for note in notes + ([spec.notes] if "encoder" not in files and spec.notes else []):
        print(f"note: {note}", file=sys.stderr)
    return path


def ensure_installed(name: str, download: bool = True, convert: Converter = published_bundle) -> Path:
    """The bundle folder of a registry model, installing it first (with `convert`) when allowed."""
    spec = get(name)
    if is_installed(name):
        return bundle_path(name)
    if not download:
        raise PretrainedError(
            f"'{name}' is not installed in {facevae_home()}. Run `facevae download {name}`.\n"
            + offline_instructions(spec)
        )
    print(f"Downloading '{name}' into {facevae_home()} (first use)...", file=sys.stderr)
    return install(name, progress=True, convert=convert)


def installed_models() -> list[tuple[str, Path]]:
    """(folder name, bundle path) of every bundle under FACEVAE_HOME/models."""
    models = facevae_home() / "models"
    if not models.is_dir():
        return []
    return [(p.name, p) for p in sorted(models.iterdir()) if not p.name.startswith(".") and is_bundle(p)]
