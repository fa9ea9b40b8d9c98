"""Named pretrained models: where their files are, how to check them, where they go.

    FACEVAE_HOME/                       default: the user's cache folder + /facevae
      downloads/NAME/PATH               verified source files (PATH as in the source repo)
      downloads/NAME/PATH.part          an interrupted download, resumed by the next try
      models/NAME/                      the converted bundle (what `facevae.load(NAME)` opens)

`install(NAME)` fetches every file (from the network, a mirror set by FACEVAE_BASE_URL, or
a local folder), verifies its SHA-256 or git blob id, converts the files into a bundle and
writes it atomically. A file that fails verification is deleted; a bundle folder exists only
when the whole conversion succeeded. New models (e.g. ones trained with facevae) are added
to REGISTRY.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .bundle import FaceModel, is_bundle, load_bundle, save_bundle
from .errors import UserError

BASE_URL_ENV = "FACEVAE_BASE_URL"
HOME_ENV = "FACEVAE_HOME"
CHUNK = 1 << 16
ATTEMPTS = 3  # tries per file; each one resumes where the last stopped


class PretrainedError(UserError):
    """A registry model that cannot be installed: the message says what to do."""


class ChecksumError(PretrainedError):
    """A file whose size or checksum differs from the registry's."""


@dataclass(frozen=True)
class SourceFile:
    """One file of a registry model, at `path` relative to the model's base URL."""

    role: str  # "decoder", "encoder" or "attributes"
    path: str
    size: int | None = None
    sha256: str | None = None
    git_blob: str | None = None  # SHA-1 of b"blob <size>\0" + bytes, as in `git ls-tree`
    required: bool = True

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class PretrainedModel:
    name: str
    description: str
    base_url: str  # ends with "/"; FACEVAE_BASE_URL overrides it
    files: tuple[SourceFile, ...]
    licence: str
    author: str
    copyright: str
    source: str  # human-readable home of the model
    commit: str = ""
    notes: str = ""
    # "keras": the original project's .keras files + attribute JSON (roles decoder, encoder,
    # attributes); "bundle": a facevae bundle's own files (roles config, decoder, encoder,
    # attributes), e.g. a model trained with facevae and published somewhere.
    format: str = "keras"


_ORIGINAL_COMMIT = "b77786ccd7e69812bd5d82dd3f9eac906b13ad40"
_ORIGINAL_REPO = "https://github.com/farhad-dalirani/Controllable-Face-Generation-VAE"

REGISTRY: dict[str, PretrainedModel] = {
    "celeba64-original": PretrainedModel(
        name="celeba64-original",
        description="The original TensorFlow project's CelebA 64x64 VAE (latent 200) with 40 attribute vectors",
        base_url=f"https://raw.githubusercontent.com/farhad-dalirani/Controllable-Face-Generation-VAE/{_ORIGINAL_COMMIT}/",
        files=(
            SourceFile("decoder", "model_weights/decoder.keras", size=4_104_093,
                       sha256="db62696c568a6e4eef1e9709137f8bbdd329d6c3614e93f34185bec05fb36588",
                       git_blob="faae1f06721de8ebb17f8f56b5d09f0b3f02e3a8"),
            SourceFile("attributes", "attributes_embedings/attributes_embedings.json", size=180_549,
                       sha256="8ea3668d62a54d8a46d9e7c8e035d813b36213b796f94e4c3d7aaa83ce937792",
                       git_blob="0a34627a564c21b20725105a0926a57c83a0e4b0"),
            # Size and SHA-256 unpublished: the git blob id (from the commit's tree) verifies it.
            SourceFile("encoder", "model_weights/encoder.keras",
                       git_blob="2eed33a5ee9e2755fcbecbef464691003608d03e", required=False),
        ),
        licence="MIT",
        author="Farhad Dalirani",
        copyright="Copyright (c) 2024 Farhad Dalirani",
        source=f"{_ORIGINAL_REPO}/tree/{_ORIGINAL_COMMIT}",
        commit=_ORIGINAL_COMMIT,
        notes="Without encoder.keras the model generates, edits and morphs faces, but reconstructing "
              "a photo needs the encoder (or the optimisation-based inversion).",
    ),
}


def facevae_home() -> Path:
    """FACEVAE_HOME, else the user's cache folder (XDG_CACHE_HOME, ~/Library/Caches, %LOCALAPPDATA%)."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "facevae"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "facevae" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "facevae"
    return Path.home() / ".cache" / "facevae"


def get(name: str) -> PretrainedModel:
    if name not in REGISTRY:
        raise PretrainedError(f"'{name}' is not a registered model. Registered: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def bundle_path(name: str) -> Path:
    return facevae_home() / "models" / name


def download_dir(name: str) -> Path:
    return facevae_home() / "downloads" / name


def is_installed(name: str) -> bool:
    return is_bundle(bundle_path(name))


def base_url_for(spec: PretrainedModel, base_url: str | None = None) -> str:
    url = base_url or os.environ.get(BASE_URL_ENV) or spec.base_url
    return url if url.endswith("/") else url + "/"


# --- verification ----------------------------------------------------------------------

def file_digests(path: Path) -> tuple[str, str]:
    """(SHA-256, git blob id) of a file, in one pass."""
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            sha256.update(chunk)
            blob.update(chunk)
    return sha256.hexdigest(), blob.hexdigest()


def verify(file: SourceFile, path: Path) -> None:
    """Raise ChecksumError unless `path` has the registry's size and checksums."""
    size = path.stat().st_size
    if file.size is not None and size != file.size:
        raise ChecksumError(f"{path} has {size:,} bytes, expected {file.size:,} for {file.path}")
    sha256, blob = file_digests(path)
    if file.sha256 and sha256 != file.sha256:
        raise ChecksumError(f"{path} has SHA-256 {sha256}, expected {file.sha256} for {file.path}")
    if file.git_blob and blob != file.git_blob:
        raise ChecksumError(f"{path} has git blob id {blob}, expected {file.git_blob} for {file.path}")


# --- downloading -----------------------------------------------------------------------

class _NotFound(Exception):
    """The server answered 404: the file is not there (fine for an optional file)."""


def _fetch_once(url: str, part: Path, expected_size: int | None, progress: bool, label: str) -> None:
    """Append the rest of `url` to `part`, resuming with an HTTP Range request.

    A server that ignores Range answers 200 with the whole file: start again from zero.
    Raises OSError or http.client.HTTPException when the transfer breaks.
    """
    from tqdm.auto import tqdm

    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset == expected_size:
        return  # complete already (the last run stopped before verifying it)
    if expected_size is not None and offset > expected_size:
        part.unlink()
        offset = 0
    headers = {"User-Agent": f"facevae/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise _NotFound(url) from None
        if error.code == 416 and offset:  # nothing after our offset: start again from zero
            part.unlink()
        raise
    with response:
        if offset and response.status != 206:
            offset = 0  # Range ignored: the body is the whole file
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else expected_size
        received = 0
        with open(part, "ab" if offset else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=label, disable=not progress, leave=False,
        ) as bar:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
                if expected_size is not None and offset + received > expected_size:
                    break  # more than the registry's size: never fill the disk with it
    if expected_size is not None and offset + received > expected_size:
        part.unlink()
        raise ChecksumError(f"{url} sent more than the expected {expected_size:,} bytes; it is not the registry's file")
    if length is not None and received != int(length):
        raise ConnectionError(f"connection closed after {offset + received:,} of {total:,} bytes")


def download(url: str, target: Path, file: SourceFile, progress: bool = True) -> Path:
    """Download `url` to `target` through `target.part`, verify it, and only then rename it.

    A broken transfer is retried (resuming) up to ATTEMPTS times; a server that cannot be
    reached at all raises urllib.error.URLError at once; 404 raises _NotFound.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _fetch_once(url, part, file.size, progress, file.filename)
            break
        except urllib.error.HTTPError as error:
            if 400 <= error.code < 500 and error.code != 416:  # refused (403, 401, ...): retrying won't help
                raise PretrainedError(f"{url}: HTTP {error.code} {error.reason}") from None
            last_error: Exception = error
        except urllib.error.URLError as error:
            if attempt == 1 and not part.exists():
                raise  # no connection at all
            last_error = error
        except (OSError, http.client.HTTPException) as error:
            last_error = error
    else:
        raise PretrainedError(
            f"Downloading {url} failed {ATTEMPTS} times (last: {last_error}). Run the command again: "
            f"it resumes from {part}"
        )
    try:
        verify(file, part)
    except ChecksumError as error:
        part.unlink()
        raise ChecksumError(
            f"Refusing {url}: {error}. The file was deleted. If a mirror ({BASE_URL_ENV}) served it, "
            f"the mirror's copy is damaged or altered"
        ) from None
    os.replace(part, target)
    return target


# --- locating the files ----------------------------------------------------------------

def _in_folder(folder: Path, file: SourceFile) -> Path | None:
    """A file in a user's folder: flat, or at its relative path in the source repository."""
    for candidate in (folder / file.filename, folder / file.path):
        if candidate.is_file():
            return candidate
    return None


def offline_instructions(spec: PretrainedModel) -> str:
    """Which files to fetch from where, and where to put them, for an offline install."""
    lines = [f"To install '{spec.name}' without network, download these files on a machine with internet access:"]
    for file in spec.files:
        lines.append(f"  {spec.base_url}{file.path}" + ("" if file.required else "   (optional: encoder for reconstruction)"))
    lines.append("put them in one folder DIR (flat, or at the paths above relative to DIR) and run")
    lines.append(f"  facevae download {spec.name} --from DIR")
    lines.append(f"or set {BASE_URL_ENV} to a mirror that serves them at these paths.")
    return "\n".join(lines)


def _gather_local(spec: PretrainedModel, folder: Path) -> dict[str, Path]:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise PretrainedError(f"--from {folder}: no such folder")
    found: dict[str, Path] = {}
    missing = []
    for file in spec.files:
        path = _in_folder(folder, file)
        if path is None:
            if file.required:
                missing.append(file)
            continue
        try:
            verify(file, path)
        except ChecksumError as error:
            raise ChecksumError(f"{error}. Copy an intact {file.filename} from {spec.source} into {folder}") from None
        found[file.role] = path
    if missing:
        names = ", ".join(f"{f.filename} (or {f.path})" for f in missing)
        raise PretrainedError(f"{folder} lacks {names}.\n" + offline_instructions(spec))
    return found


def _gather_remote(spec: PretrainedModel, base_url: str, progress: bool) -> tuple[dict[str, Path], list[str]]:
    found: dict[str, Path] = {}
    notes: list[str] = []
    for file in spec.files:
        target = download_dir(spec.name) / file.path
        if target.is_file():
            try:
                verify(file, target)
                found[file.role] = target
                continue
            except ChecksumError:
                target.unlink()  # damaged since it was verified: fetch it again
        url = base_url + file.path
        try:
            found[file.role] = download(url, target, file, progress)
        except _NotFound:
            if file.required:
                raise PretrainedError(f"{url} does not exist (HTTP 404).\n" + offline_instructions(spec)) from None
            notes.append(f"{file.path} is not available at {url}; installed without it")
        except urllib.error.URLError as error:
            if not file.required:
                notes.append(f"could not fetch optional {file.path} ({error}); installed without it")
                continue
            raise PretrainedError(f"Cannot download {url} ({getattr(error, 'reason', error)}).\n"
                                  + offline_instructions(spec)) from None
    return found, notes


# --- installing ------------------------------------------------------------------------

BUNDLE_FILES = {"config": "config.json", "decoder": "decoder.safetensors", "encoder": "encoder.safetensors",
                "attributes": "attributes.safetensors"}


def _published_bundle(files: dict[str, Path], provenance: dict) -> FaceModel:
    """A bundle published as files: checked by loading it like any bundle."""
    with tempfile.TemporaryDirectory() as tmp:
        for role, path in files.items():
            shutil.copyfile(path, Path(tmp) / BUNDLE_FILES[role])
        meta = json.loads((Path(tmp) / "config.json").read_text())
        meta["has_encoder"] = "encoder" in files  # the encoder may be optional in the registry
        (Path(tmp) / "config.json").write_text(json.dumps(meta))
        model = load_bundle(tmp)
    model.provenance = {**model.provenance, **provenance}
    return model


def _convert(spec: PretrainedModel, files: dict[str, Path], origins: dict[str, str]) -> Path:
    from .interop.keras import import_keras

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
    if spec.format == "bundle":
        model = _published_bundle(files, provenance)
    else:
        model = import_keras(files["decoder"], files.get("encoder"), files.get("attributes"), provenance=provenance)
    return save_bundle(model, bundle_path(spec.name))


def install(name: str, source_dir: str | Path | None = None, base_url: str | None = None,
            progress: bool = True, force: bool = False) -> Path:
    """Install a registry model into FACEVAE_HOME and return its bundle folder.

    source_dir: a folder with the files (flat or at the source's relative paths), for
    offline use; otherwise they are downloaded from base_url (default: FACEVAE_BASE_URL,
    else the registry's URL). An installed model is returned as is unless force=True.
    """
    spec = get(name)
    target = bundle_path(name)
    if is_bundle(target) and not force:
        return target
    if source_dir is not None:
        files = _gather_local(spec, Path(source_dir))
        origins = {role: str(path) for role, path in files.items()}
        notes = [f"{source_dir} has no {f.filename}; installed without it"
                 for f in spec.files if not f.required and f.role not in files]
    else:
        url = base_url_for(spec, base_url)
        if force:
            shutil.rmtree(download_dir(name), ignore_errors=True)
        files, notes = _gather_remote(spec, url, progress)
        origins = {f.role: url + f.path for f in spec.files if f.role in files}
    path = _convert(spec, files, origins)
    for note in notes + ([spec.notes] if "encoder" not in files and spec.notes else []):
        print(f"note: {note}", file=sys.stderr)
    return path


def ensure_installed(name: str, download: bool = True) -> Path:
    """The bundle folder of a registry model, installing it first when allowed."""
    spec = get(name)
    if is_installed(name):
        return bundle_path(name)
    if not download:
        raise PretrainedError(
            f"'{name}' is not installed in {facevae_home()}. Run `facevae download {name}`.\n"
            + offline_instructions(spec)
        )
    print(f"Downloading '{name}' into {facevae_home()} (first use)...", file=sys.stderr)
    return install(name, progress=True)


def installed_models() -> list[tuple[str, Path]]:
    """(folder name, bundle path) of every bundle under FACEVAE_HOME/models."""
    models = facevae_home() / "models"
    if not models.is_dir():
        return []
    return [(p.name, p) for p in sorted(models.iterdir()) if not p.name.startswith(".") and is_bundle(p)]
