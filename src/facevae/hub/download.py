"""Fetching a registry model's files: resumable HTTP downloads, checksums, local folders.

Every file is verified (size, SHA-256 or git blob id) before it is used; a file that fails is
deleted, and an interrupted download resumes from its `.part` file on the next try.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from .. import __version__
from .registry import BASE_URL_ENV, PretrainedError, PretrainedModel, SourceFile, download_dir

CHUNK = 1 << 16
ATTEMPTS = 3  # tries per file; each one resumes where the last stopped


class ChecksumError(PretrainedError):
    """A file whose size or checksum differs from the registry's."""


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
        optional = "" if file.required else "   (optional: encoder for reconstruction)"
        lines.append(f"  {spec.base_url}{file.path}{optional}")
    lines.append("put them in one folder DIR (flat, or at the paths above relative to DIR) and run")
    lines.append(f"  facevae download {spec.name} --from DIR")
    lines.append(f"or set {BASE_URL_ENV} to a mirror that serves them at these paths.")
    return "\n".join(lines)


def gather_local(spec: PretrainedModel, folder: Path) -> dict[str, Path]:
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


def gather_remote(spec: PretrainedModel, base_url: str, progress: bool) -> tuple[dict[str, Path], list[str]]:
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
