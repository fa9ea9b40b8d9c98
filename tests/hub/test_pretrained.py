"""The registry: install from a folder (`--from`) and over real HTTP on 127.0.0.1, with the
original project's files from ../shared; checksums, resume, offline errors, the cache folder."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import facevae
from facevae.cli.main import main
from facevae.hub import download, install, registry
from facevae.hub.bundle import is_bundle, load_bundle

NAME = "celeba64-original"
SPEC = registry.REGISTRY[NAME]
DECODER = SPEC.files[0]
ATTRIBUTES = SPEC.files[1]


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


@pytest.fixture
def original_files(shared_pretrained_dir: Path) -> dict[str, bytes]:
    """The original's files at their relative paths in the repository (no encoder in ../shared)."""
    return {DECODER.path: (shared_pretrained_dir / "decoder.keras").read_bytes(),
            ATTRIBUTES.path: (shared_pretrained_dir / "attributes_embedings.json").read_bytes()}


@pytest.fixture
def server(original_files: dict[str, bytes], facevae_home: Path, monkeypatch: pytest.MonkeyPatch):
    files = FileServer(original_files)
    monkeypatch.setenv(registry.BASE_URL_ENV, files.url)
    yield files
    files.close()


def looks_installed(home: Path) -> list[str]:
    """Everything under FACEVAE_HOME that could pass for an installed model or a verified file."""
    found = [str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()] if home.exists() else []
    return [p for p in found if not p.endswith(".part")]


def reference_decoder(shared: Path) -> dict[str, torch.Tensor]:
    from facevae.interop.keras import import_keras

    return import_keras(shared / "decoder.keras").decoder.state_dict()


# --- from a folder -----------------------------------------------------------------------

def test_download_from_folder_end_to_end(shared_pretrained_dir: Path, facevae_home: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    assert main(["download", NAME, "--from", str(shared_pretrained_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    path = facevae_home / "models" / NAME
    assert str(path) in out and "MIT" in out
    model = facevae.load(NAME)
    assert model.path == path and not model.has_encoder and len(model.attributes) == 40
    assert model.provenance["licence"] == "MIT" and model.provenance["author"] == "Farhad Dalirani"
    assert model.provenance["commit"] == SPEC.commit
    assert model.preprocessing.crop == "squash" and model.preprocessing.image_size == 64
    images = model.decode(torch.randn(3, 200))
    assert images.shape == (3, 3, 64, 64) and 0 <= images.min() and images.max() <= 1
    with pytest.raises(facevae.hub.bundle.EncoderMissingError, match="no encoder"):
        model.encode(images)
    assert main(["download", NAME, "--from", str(shared_pretrained_dir)]) == 0
    assert "already installed" in capsys.readouterr().out


def test_from_folder_at_original_relative_paths(shared_pretrained_dir: Path, facevae_home: Path,
                                                tmp_path: Path) -> None:
    source = tmp_path / "clone"
    for file, name in ((DECODER, "decoder.keras"), (ATTRIBUTES, "attributes_embedings.json")):
        (source / file.path).parent.mkdir(parents=True, exist_ok=True)
        (source / file.path).symlink_to(shared_pretrained_dir / name)
    bundle = install.install(NAME, source_dir=source, progress=False)
    assert is_bundle(bundle) and len(load_bundle(bundle).attributes) == 40


def test_from_folder_missing_files_says_what_to_put_where(tmp_path: Path, facevae_home: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["download", NAME, "--from", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "decoder.keras" in err and "attributes_embedings.json" in err
    assert SPEC.base_url + DECODER.path in err and f"facevae download {NAME} --from DIR" in err
    assert looks_installed(facevae_home) == []


def test_from_folder_refuses_an_altered_file(shared_pretrained_dir: Path, facevae_home: Path, tmp_path: Path) -> None:
    data = bytearray((shared_pretrained_dir / "decoder.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "decoder.keras").write_bytes(bytes(data))
    shutil.copy(shared_pretrained_dir / "attributes_embedings.json", tmp_path)
    with pytest.raises(download.ChecksumError, match="SHA-256"):
        install.install(NAME, source_dir=tmp_path, progress=False)
    assert (tmp_path / "decoder.keras").exists()  # the user's own file is never deleted
    assert looks_installed(facevae_home) == []


def test_registry_checksums_match_the_shared_files(shared_pretrained_dir: Path) -> None:
    """Both digests, computed independently, agree with the registry (the git blob id too)."""
    for file, name in ((DECODER, "decoder.keras"), (ATTRIBUTES, "attributes_embedings.json")):
        assert download.file_digests(shared_pretrained_dir / name) == (file.sha256, file.git_blob)


# --- over HTTP ---------------------------------------------------------------------------

def test_download_over_http_end_to_end(server: FileServer, facevae_home: Path, shared_pretrained_dir: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    assert main(["download", NAME, "--quiet"]) == 0
    assert str(facevae_home / "models" / NAME) in capsys.readouterr().out
    assert {path for path, _ in server.requests} == {f.path for f in SPEC.files}  # encoder: 404, optional
    model = facevae.load(NAME)
    assert not model.has_encoder and len(model.attributes) == 40
    assert model.provenance["files"][DECODER.path]["from"] == server.url + DECODER.path
    expected = reference_decoder(shared_pretrained_dir)
    assert all(torch.equal(v, expected[k]) for k, v in model.decoder.state_dict().items())
    assert (facevae_home / "downloads" / NAME / DECODER.path).is_file()
    assert not list(facevae_home.rglob("*.part"))


def test_tampered_download_is_refused_and_nothing_looks_installed(server: FileServer, facevae_home: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    data = bytearray(server.files[DECODER.path])
    data[1000] ^= 0x01
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
        install.install(NAME, progress=False)
    assert not install.is_installed(NAME) and not list(facevae_home.rglob("*.part"))


def test_a_wrong_encoder_is_refused_by_its_git_blob_id(server: FileServer, facevae_home: Path) -> None:
    server.files["model_weights/encoder.keras"] = b"PK\x03\x04 not the original encoder"
    with pytest.raises(download.ChecksumError, match="git blob id"):
        install.install(NAME, progress=False)
    assert not install.is_installed(NAME)


def test_interrupted_download_resumes_with_range(server: FileServer, facevae_home: Path) -> None:
    server.drops[DECODER.path] = 1
    install.install(NAME, progress=True)
    ranges = [r for path, r in server.requests if path == DECODER.path]
    assert ranges[0] is None and ranges[1] == f"bytes={DECODER.size // 2}-"  # resumed at the cut
    assert install.is_installed(NAME)


def test_interrupted_download_restarts_when_range_is_ignored(server: FileServer, facevae_home: Path,
                                                             shared_pretrained_dir: Path) -> None:
    server.honour_range = False
    server.drops[DECODER.path] = 1
    bundle = install.install(NAME, progress=False)
    expected = reference_decoder(shared_pretrained_dir)
    assert all(torch.equal(v, expected[k]) for k, v in load_bundle(bundle).decoder.state_dict().items())


def test_download_that_keeps_failing_leaves_a_part_file_that_the_next_run_resumes(
        server: FileServer, facevae_home: Path) -> None:
    server.drops[DECODER.path] = download.ATTEMPTS
    with pytest.raises(registry.PretrainedError, match="resumes"):
        install.install(NAME, progress=False)
    part = facevae_home / "downloads" / NAME / (DECODER.path + ".part")
    assert part.is_file() and 0 < part.stat().st_size < DECODER.size
    assert not install.is_installed(NAME) and not (facevae_home / "downloads" / NAME / DECODER.path).exists()
    kept = part.stat().st_size
    server.requests.clear()
    install.install(NAME, progress=False)
    assert server.requests[0] == (DECODER.path, f"bytes={kept}-")
    assert install.is_installed(NAME) and not part.exists()


def test_load_by_name_downloads_on_first_use(server: FileServer, facevae_home: Path) -> None:
    with pytest.raises(registry.PretrainedError, match="not installed"):
        install.ensure_installed(NAME, download=False)
    model = facevae.load(NAME)
    assert model.path == facevae_home / "models" / NAME
    server.requests.clear()
    assert install.ensure_installed(NAME) == model.path and server.requests == []  # cached


def test_no_network_error_says_which_files_to_put_where(facevae_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    import socket

    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(registry.BASE_URL_ENV, f"http://127.0.0.1:{port}")
    assert main(["download", NAME]) == 2
    err = capsys.readouterr().err
    for file in SPEC.files:
        assert SPEC.base_url + file.path in err
    assert "--from DIR" in err and looks_installed(facevae_home) == []


# --- the cache folder and listing --------------------------------------------------------

def test_facevae_home_respects_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACEVAE_HOME", str(tmp_path / "home"))
    assert registry.facevae_home() == tmp_path / "home"
    monkeypatch.delenv("FACEVAE_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert registry.facevae_home() == tmp_path / "xdg" / "facevae"


def test_models_lists_registry_and_installed_bundles(shared_pretrained_dir: Path, facevae_home: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert NAME in out and "not installed" in out and "MIT" in out
    install.install(NAME, source_dir=shared_pretrained_dir, progress=False)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "64px, latent 200, no encoder, 40 attribute vectors" in out


def test_unknown_model_name_lists_the_registered_ones(facevae_home: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["download", "celeba64-orignal"]) == 2
    assert NAME in capsys.readouterr().err


def test_registry_entry_for_a_published_facevae_bundle(tiny_bundle: Path, facevae_home: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Models trained with facevae join the registry as a bundle's files on any web server."""
    import hashlib

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
