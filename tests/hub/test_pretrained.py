"""The registry: install from a folder (`--from`) and over real HTTP on 127.0.0.1; checksums,
resume, offline errors, the cache folder.

The download tests use a registry entry made here: a small model in the original's
architecture exported as the original's files (decoder.keras, encoder.keras, the attribute
JSON), with their sizes and checksums computed in the test. Only the tests of the real
`celeba64-original` files (their checksums, their conversion) need ../shared and skip without it.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import facevae
from facevae.cli.main import main
from facevae.hub import download, install, registry
from facevae.interop.keras_export import export_keras
from facevae.interop.loading import convert_published
from facevae.model.bundle import FaceModel, is_bundle, load_bundle
from support.models import plain_decode, small_model
from support.network import free_port

ORIGINAL = registry.REGISTRY[registry.DEFAULT_MODEL]

NAME = "tiny-original"  # the test entry: the original's file layout, a small random model
DECODER = registry.SourceFile("decoder", "model_weights/decoder.keras")  # sizes and checksums: `published`
ATTRIBUTES = registry.SourceFile("attributes", "attributes_embedings/attributes_embedings.json")
ENCODER = registry.SourceFile("encoder", "model_weights/encoder.keras", required=False)


class FileServer:
    """Serves `files` (relative path -> bytes) the way raw.githubusercontent.com does, with
    switches for the failures a download must survive."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.drops: dict[str, int] = {}  # path -> how many responses to cut off halfway
        self.honour_range = True
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.lstrip("/")
                wanted = self.headers.get("Range")
                state.requests.append((path, wanted))
                if path not in state.files:
                    self.send_error(404)
                    return
                data, start = state.files[path], 0
                if wanted and state.honour_range:
                    start = int(wanted.removeprefix("bytes=").rstrip("-"))
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if state.drops.get(path, 0) > 0:  # the connection dies halfway through
                    state.drops[path] -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Published:
    """A registry entry and the files it names (relative path -> bytes), made from `model`."""

    spec: registry.PretrainedModel
    files: dict[str, bytes]
    model: FaceModel

    def file(self, role: str) -> registry.SourceFile:
        return next(f for f in self.spec.files if f.role == role)

    def folder(self, path: Path, roles: tuple[str, ...] = ("decoder", "attributes"), flat: bool = True) -> Path:
        """The files of `roles` written into `path`: flat, or at their relative paths."""
        for role in roles:
            file = self.file(role)
            target = path / (file.filename if flat else file.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.files[file.path])
        return path


def checksummed(file: registry.SourceFile, data: bytes, sha256: bool = True) -> registry.SourceFile:
    """`file` with the size, SHA-256 and git blob id of `data` (an optional file, like the
    original's encoder, gets the git blob id only)."""
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    if not sha256:
        return registry.SourceFile(file.role, file.path, git_blob=blob, required=file.required)
    return registry.SourceFile(file.role, file.path, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                               git_blob=blob, required=file.required)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[FaceModel, dict[str, bytes]]:
    model = small_model(seed=1)
    out = export_keras(model, tmp_path_factory.mktemp("published"))
    return model, {f.path: (out / f.path).read_bytes() for f in (DECODER, ATTRIBUTES, ENCODER)}


@pytest.fixture
def published(exported: tuple[FaceModel, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch) -> Published:
    """The test entry, registered for this test, at a base URL that does not resolve (a test
    that downloads sets FACEVAE_BASE_URL to its 127.0.0.1 server, as a mirror would)."""
    model, files = exported
    spec = registry.PretrainedModel(
        name=NAME, description="a small random model in the original's file layout",
        base_url="https://models.invalid/tiny-original/",
        files=(checksummed(DECODER, files[DECODER.path]), checksummed(ATTRIBUTES, files[ATTRIBUTES.path]),
               checksummed(ENCODER, files[ENCODER.path], sha256=False)),
        licence="MIT", author="facevae tests", copyright="", source="https://models.invalid/tiny-original",
        commit="0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setitem(registry.REGISTRY, NAME, spec)
    return Published(spec, files, model)


@pytest.fixture
def server(published: Published, facevae_home: Path, monkeypatch: pytest.MonkeyPatch):
    """The entry's decoder and attributes on 127.0.0.1 (no encoder: HTTP 404, as optional)."""
    files = FileServer({f.path: published.files[f.path] for f in (DECODER, ATTRIBUTES)})
    monkeypatch.setenv(registry.BASE_URL_ENV, files.url)
    yield files
    files.close()


def looks_installed(home: Path) -> list[str]:
    """Everything under FACEVAE_HOME that could pass for an installed model or a verified file."""
    found = [str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()] if home.exists() else []
    return [p for p in found if not p.endswith(".part")]


def same_decoder(model: FaceModel, expected: FaceModel) -> bool:
    """The installed decoder's weights are the published model's, bit for bit."""
    state = expected.decoder.state_dict()
    return all(torch.equal(v, state[k]) for k, v in model.decoder.state_dict().items()
               if not k.endswith("num_batches_tracked"))


# --- the real files in ../shared -----------------------------------------------------------

def test_registry_checksums_match_the_shared_files(shared_pretrained_dir: Path) -> None:
    """Both digests, computed independently, agree with the registry (the git blob id too)."""
    for file, name in zip(ORIGINAL.files[:2], ("decoder.keras", "attributes_embedings.json")):
        data = (shared_pretrained_dir / name).read_bytes()
        assert checksummed(file, data) == file


def test_the_original_installs_from_shared_with_its_provenance(pretrained_bundle: Path) -> None:
    """The real entry's files convert into the 64px, latent-200 decoder with 40 vectors."""
    model = load_bundle(pretrained_bundle)
    assert not model.has_encoder and len(model.attributes) == 40 and model.config.latent_dim == 200
    assert model.provenance["licence"] == "MIT" and model.provenance["author"] == "Farhad Dalirani"
    assert model.provenance["commit"] == ORIGINAL.commit
    assert model.preprocessing.crop == "squash" and model.preprocessing.image_size == 64


# --- from a folder -----------------------------------------------------------------------

def test_download_from_folder_end_to_end(published: Published, facevae_home: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    folder = published.folder(tmp_path / "files")
    assert main(["download", NAME, "--from", str(folder), "--quiet"]) == 0
    out = capsys.readouterr().out
    path = facevae_home / "models" / NAME
    assert str(path) in out and "MIT" in out
    model = facevae.load(NAME)
    assert model.path == path and not model.has_encoder and model.config == published.model.config
    assert model.provenance["licence"] == "MIT" and model.provenance["author"] == "facevae tests"
    assert model.provenance["commit"] == published.spec.commit
    assert model.preprocessing.crop == "squash" and model.preprocessing.image_size == 32
    assert same_decoder(model, published.model)
    assert all(torch.equal(model.attributes[k], v) for k, v in published.model.attributes.items())
    images = plain_decode(model, torch.randn(3, 16))
    assert images.shape == (3, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    with pytest.raises(facevae.model.bundle.EncoderMissingError, match="no encoder"):
        model.encode(images)
    assert main(["download", NAME, "--from", str(folder)]) == 0
    assert "already installed" in capsys.readouterr().out


def test_from_folder_at_original_relative_paths_with_the_optional_encoder(published: Published, facevae_home: Path,
                                                                          tmp_path: Path) -> None:
    folder = published.folder(tmp_path / "clone", ("decoder", "attributes", "encoder"), flat=False)
    bundle = install.install(NAME, source_dir=folder, progress=False, convert=convert_published)
    model = load_bundle(bundle)
    assert is_bundle(bundle) and model.has_encoder and len(model.attributes) == 2
    state = published.model.encoder.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in model.encoder.state_dict().items()
               if not k.endswith("num_batches_tracked"))


def test_hub_alone_installs_only_bundles_and_leaves_keras_files_to_interop(published: Published,
                                                                          facevae_home: Path, tmp_path: Path) -> None:
    folder = published.folder(tmp_path / "files")
    with pytest.raises(registry.PretrainedError, match="published as keras files.*facevae download"):
        install.install(NAME, source_dir=folder, progress=False)  # hub's own converter: bundles only
    assert looks_installed(facevae_home) == []


def test_from_folder_missing_files_says_what_to_put_where(tmp_path: Path, facevae_home: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["download", ORIGINAL.name, "--from", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "decoder.keras" in err and "attributes_embedings.json" in err
    assert ORIGINAL.base_url + DECODER.path in err and f"facevae download {ORIGINAL.name} --from DIR" in err
    assert looks_installed(facevae_home) == []


def test_from_folder_refuses_an_altered_file(published: Published, facevae_home: Path, tmp_path: Path) -> None:
    folder = published.folder(tmp_path / "files")
    data = bytearray((folder / "decoder.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "decoder.keras").write_bytes(bytes(data))
    with pytest.raises(download.ChecksumError, match="SHA-256"):
        install.install(NAME, source_dir=folder, progress=False, convert=convert_published)
    assert (folder / "decoder.keras").exists()  # the user's own file is never deleted
    assert looks_installed(facevae_home) == []


# --- over HTTP ---------------------------------------------------------------------------

def test_download_over_http_end_to_end(server: FileServer, published: Published, facevae_home: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    assert main(["download", NAME, "--quiet"]) == 0
    assert str(facevae_home / "models" / NAME) in capsys.readouterr().out
    assert {path for path, _ in server.requests} == {f.path for f in published.spec.files}  # encoder: 404, optional
    model = facevae.load(NAME)
    assert not model.has_encoder and len(model.attributes) == 2
    assert model.provenance["files"][DECODER.path]["from"] == server.url + DECODER.path
    assert same_decoder(model, published.model)
    assert (facevae_home / "downloads" / NAME / DECODER.path).is_file()
    assert not list(facevae_home.rglob("*.part"))


def test_the_optional_encoder_is_installed_when_served(server: FileServer, published: Published,
                                                       facevae_home: Path) -> None:
    server.files[ENCODER.path] = published.files[ENCODER.path]
    assert load_bundle(install.install(NAME, progress=False, convert=convert_published)).has_encoder


def test_tampered_download_is_refused_and_nothing_looks_installed(server: FileServer, facevae_home: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    data = bytearray(server.files[DECODER.path])
    data[len(data) // 2] ^= 0x01
    server.files[DECODER.path] = bytes(data)
    assert main(["download", NAME, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Refusing" in err and DECODER.path in err and "deleted" in err
    assert not (facevae_home / "models" / NAME).exists()
    assert not any(DECODER.filename in p for p in looks_installed(facevae_home))
    assert not list(facevae_home.rglob("*.part")) and not list(facevae_home.rglob(".*partial*"))
    assert not install.is_installed(NAME)


def test_an_oversized_download_is_cut_off_and_refused(server: FileServer, facevae_home: Path) -> None:
    server.files[DECODER.path] += bytes(1 << 20)
    with pytest.raises(download.ChecksumError, match="more than the expected"):
        install.install(NAME, progress=False, convert=convert_published)
    assert not install.is_installed(NAME) and not list(facevae_home.rglob("*.part"))


def test_a_wrong_encoder_is_refused_by_its_git_blob_id(server: FileServer, facevae_home: Path) -> None:
    server.files[ENCODER.path] = b"PK\x03\x04 not the published encoder"
    with pytest.raises(download.ChecksumError, match="git blob id"):
        install.install(NAME, progress=False, convert=convert_published)
    assert not install.is_installed(NAME)


def test_interrupted_download_resumes_with_range(server: FileServer, published: Published, facevae_home: Path) -> None:
    server.drops[DECODER.path] = 1
    install.install(NAME, progress=True, convert=convert_published)
    ranges = [r for path, r in server.requests if path == DECODER.path]
    assert ranges[0] is None and ranges[1] == f"bytes={published.file('decoder').size // 2}-"  # resumed at the cut
    assert install.is_installed(NAME)


def test_interrupted_download_restarts_when_range_is_ignored(server: FileServer, published: Published,
                                                             facevae_home: Path) -> None:
    server.honour_range = False
    server.drops[DECODER.path] = 1
    bundle = install.install(NAME, progress=False, convert=convert_published)
    assert same_decoder(load_bundle(bundle), published.model)


def test_download_that_keeps_failing_leaves_a_part_file_that_the_next_run_resumes(
        server: FileServer, published: Published, facevae_home: Path) -> None:
    server.drops[DECODER.path] = download.ATTEMPTS
    with pytest.raises(registry.PretrainedError, match="resumes"):
        install.install(NAME, progress=False, convert=convert_published)
    part = facevae_home / "downloads" / NAME / (DECODER.path + ".part")
    assert part.is_file() and 0 < part.stat().st_size < published.file("decoder").size
    assert not install.is_installed(NAME) and not (facevae_home / "downloads" / NAME / DECODER.path).exists()
    kept = part.stat().st_size
    server.requests.clear()
    install.install(NAME, progress=False, convert=convert_published)
    assert server.requests[0] == (DECODER.path, f"bytes={kept}-")
    assert install.is_installed(NAME) and not part.exists()


def test_load_by_name_downloads_on_first_use(server: FileServer, facevae_home: Path) -> None:
    with pytest.raises(registry.PretrainedError, match="not installed"):
        install.ensure_installed(NAME, download=False, convert=convert_published)
    model = facevae.load(NAME)
    assert model.path == facevae_home / "models" / NAME
    server.requests.clear()
    assert install.ensure_installed(NAME, convert=convert_published) == model.path  # cached:
    assert server.requests == []


def test_no_network_error_says_which_files_to_put_where(facevae_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(registry.BASE_URL_ENV, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert main(["download", ORIGINAL.name]) == 2
    err = capsys.readouterr().err
    for file in ORIGINAL.files:
        assert ORIGINAL.base_url + file.path in err
    assert "--from DIR" in err and looks_installed(facevae_home) == []


# --- the cache folder and listing --------------------------------------------------------

def test_facevae_home_respects_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACEVAE_HOME", str(tmp_path / "home"))
    assert registry.facevae_home() == tmp_path / "home"
    monkeypatch.delenv("FACEVAE_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert registry.facevae_home() == tmp_path / "xdg" / "facevae"


def test_models_lists_registry_and_installed_bundles(published: Published, facevae_home: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert ORIGINAL.name in out and NAME in out and "not installed" in out and "MIT" in out
    install.install(NAME, source_dir=published.folder(tmp_path / "files"), progress=False,
                    convert=convert_published)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert f"{NAME:<20} installed" in out and "32px, latent 16, no encoder, 2 attribute vectors" in out


def test_unknown_model_name_lists_the_registered_ones(facevae_home: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["download", "celeba64-orignal"]) == 2
    assert ORIGINAL.name in capsys.readouterr().err


def test_registry_entry_for_a_published_facevae_bundle(tiny_bundle: Path, facevae_home: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Models trained with facevae join the registry as a bundle's files on any web server."""
    monkeypatch.delenv(registry.BASE_URL_ENV, raising=False)
    files, sources = {}, []
    for role, filename in install.BUNDLE_FILES.items():
        data = (tiny_bundle / filename).read_bytes()
        files[f"tiny/v1/{filename}"] = data
        sources.append(registry.SourceFile(role, f"tiny/v1/{filename}", size=len(data),
                                             sha256=hashlib.sha256(data).hexdigest(), required=role != "encoder"))
    server = FileServer(files)
    try:
        spec = registry.PretrainedModel(
            name="tiny-test", description="a tiny test model", base_url=server.url, files=tuple(sources),
            licence="CC-BY-4.0", author="tests", copyright="", source=server.url, format="bundle")
        monkeypatch.setitem(registry.REGISTRY, "tiny-test", spec)
        model = facevae.load("tiny-test")
    finally:
        server.close()
    original = load_bundle(tiny_bundle)
    assert model.has_encoder and model.provenance["licence"] == "CC-BY-4.0"
    assert all(torch.equal(v, original.decoder.state_dict()[k]) for k, v in model.decoder.state_dict().items())
    assert all(torch.equal(model.attributes[k], v) for k, v in original.attributes.items())
